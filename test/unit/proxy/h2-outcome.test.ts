// How an HTTP/2 or gRPC exchange is judged: which outcomes count against the instance that served
// it (the ewma balancer's failures). gRPC answers errors inside an HTTP 200, so its status decides.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  CALLER_CANCELLED_STATUS,
  failsInstance,
  grpcStatusOf,
  type H2Outcome,
} from '../../../src/proxy/h2-forward.js';

const answered = (status: number, grpcStatus: string): H2Outcome => ({
  status,
  grpcStatus,
  sentResponse: true,
});

describe('failsInstance', () => {
  it('counts the gRPC statuses that stand for a server error (5xx in google.rpc.Code), and no other', () => {
    const serverErrors = new Set([2, 4, 12, 13, 14, 15]);
    for (let code = 0; code <= 16; code++) {
      assert.equal(
        failsInstance(true, answered(200, String(code))),
        serverErrors.has(code),
        `grpc-status ${code}`,
      );
    }
  });

  it('does not count a gRPC call that ended whole without a status, or with one outside gRPC’s codes', () => {
    for (const s of ['', '17', '-1', '014', ' 14', '1e1', 'UNAVAILABLE'])
      assert.equal(failsInstance(true, answered(200, s)), false, JSON.stringify(s));
  });

  it('reads grpc-status only for gRPC: plain HTTP/2 goes by its HTTP status', () => {
    assert.equal(failsInstance(false, answered(200, '14')), false);
    assert.equal(failsInstance(false, answered(503, '')), true);
    assert.equal(failsInstance(false, answered(404, '')), false);
  });

  it('counts an HTTP status of 500 or more whatever the grpc-status says', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.boolean(), fc.string(), (status, grpc, g) => {
        const fails = failsInstance(grpc, answered(status, g));
        if (status >= 500) assert.equal(fails, true);
        else if (!grpc) assert.equal(fails, false);
      }),
    );
  });

  it('counts an answer the upstream cut midway (a reset, or its connection lost), gRPC or not, whatever its status', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.boolean(), fc.string(), (status, grpc, g) => {
        assert.equal(failsInstance(grpc, { status, grpcStatus: g, sentResponse: true, cut: true }), true);
      }),
    );
  });

  it('labels a gRPC call by the status its caller saw: the server’s, INTERNAL for a cut answer, the agent’s own without one', () => {
    assert.equal(grpcStatusOf(true, { status: 200, grpcStatus: '5', sentResponse: true }), '5');
    assert.equal(grpcStatusOf(true, { status: 200, grpcStatus: '', sentResponse: true }), '');
    // The caller got RST_STREAM(INTERNAL_ERROR): its client reports INTERNAL (13), not "no status".
    assert.equal(grpcStatusOf(true, { status: 200, grpcStatus: '', sentResponse: true, cut: true }), '13');
    assert.equal(
      grpcStatusOf(true, { status: 502, sentResponse: false, message: '', timedOut: false }),
      '14',
    );
    assert.equal(
      grpcStatusOf(false, { status: 200, grpcStatus: '', sentResponse: true, cut: true }),
      undefined,
    );
  });

  it('counts no response as a failure (502, 504), except a call its caller cancelled (499)', () => {
    const none = (status: number, o: { timedOut?: boolean; cancelled?: true } = {}): H2Outcome => ({
      status,
      sentResponse: false,
      message: '',
      timedOut: o.timedOut ?? false,
      ...(o.cancelled ? { cancelled: true as const } : {}),
    });
    for (const grpc of [true, false]) {
      assert.equal(failsInstance(grpc, none(502)), true);
      assert.equal(failsInstance(grpc, none(504, { timedOut: true })), true);
      assert.equal(failsInstance(grpc, none(CALLER_CANCELLED_STATUS, { cancelled: true })), false);
      // Headers Node refused to send: the agent's own failure, not the instance's.
      assert.equal(
        failsInstance(grpc, { status: 502, sentResponse: false, message: '', timedOut: false, local: true }),
        false,
      );
    }
  });
});
