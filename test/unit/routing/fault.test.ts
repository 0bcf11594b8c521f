// Fault injection's pure core (core/routing/fault.ts): what an abort answers on each protocol, the
// share of requests each part takes, and the retry back-off (core/routing/retry-backoff.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SeededRng } from '../../../src/core/rand.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import {
  type CompiledFault,
  compileFault,
  decideFault,
  GRPC_AS_HTTP,
  httpAsGrpc,
  NO_FAULT,
} from '../../../src/core/routing/fault.js';
import { RETRY_BACKOFF, retryBackoffMs } from '../../../src/core/routing/retry-backoff.js';
import { GRPC_STATUS_NAMES } from '../../../src/core/state/kinds/fault.js';

const fault = (delayPercent: number, abortPercent: number): CompiledFault => ({
  delayPercent,
  delayMs: 100,
  abortPercent,
  abortHttpStatus: 503,
  abortGrpcStatus: 14,
});

describe('compileFault', () => {
  it('works out both answers of an abort from either status', () => {
    assert.deepEqual(compileFault({ abort: { percent: 5, httpStatus: 429 } }), {
      delayPercent: 0,
      delayMs: 0,
      abortPercent: 5,
      abortHttpStatus: 429,
      abortGrpcStatus: 14, // what a gRPC client makes of 429: UNAVAILABLE
    });
    const byName = compileFault({ abort: { percent: 5, grpcStatus: 'PERMISSION_DENIED' } });
    assert.equal(byName.abortGrpcStatus, 7);
    assert.equal(byName.abortHttpStatus, 403);
    const both = compileFault({ abort: { percent: 5, httpStatus: 500, grpcStatus: 4 } });
    assert.deepEqual([both.abortHttpStatus, both.abortGrpcStatus], [500, 4]);
    assert.deepEqual(compileFault({ delay: { percent: 1, fixedDelayMs: 250 } }), {
      delayPercent: 1,
      delayMs: 250,
      abortPercent: 0,
      abortHttpStatus: 503,
      abortGrpcStatus: 14,
    });
  });

  it('maps every gRPC status to an HTTP one and back as gRPC clients do', () => {
    assert.equal(GRPC_AS_HTTP.length, GRPC_STATUS_NAMES.length);
    assert.deepEqual(
      [400, 401, 403, 404, 429, 502, 503, 504, 500, 418].map(httpAsGrpc),
      [13, 16, 7, 12, 14, 14, 14, 14, 2, 2],
    );
  });

  it('is carried on the compiled route', () => {
    const spec = {
      routes: [
        { match: { http: { pathPrefix: '/x' } }, fault: { delay: { percent: 50, fixedDelayMs: 10 } } },
      ],
    };
    const chain = compileChain((kind) => (kind === 'service-router' ? spec : undefined), 'api', 'http');
    assert.deepEqual(chain.errors, []);
    assert.equal(chain.routes[0]?.fault?.delayMs, 10);
    assert.equal(chain.routes[1]?.fault, undefined, 'the default route has none');
  });
});

describe('decideFault', () => {
  it('takes every request at 100%, none at 0%, and needs no allocation for none', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (a, b) => {
          assert.deepEqual(decideFault(fault(100, 100), a, b), { delayMs: 100, abort: true });
          assert.equal(decideFault(fault(0, 0), a, b), NO_FAULT);
        },
      ),
    );
  });

  it('delays and aborts independently, each about its share', () => {
    const rng = new SeededRng(7);
    const f = fault(10, 30);
    const n = 20_000;
    let delayed = 0;
    let aborted = 0;
    let both = 0;
    for (let i = 0; i < n; i++) {
      const d = decideFault(f, rng.next(), rng.next());
      if (d.delayMs > 0) delayed++;
      if (d.abort) aborted++;
      if (d.delayMs > 0 && d.abort) both++;
    }
    // Binomial standard deviations at n = 20,000: ~42 (10%), ~65 (30%), ~24 (3%); six of them allowed.
    assert.ok(Math.abs(delayed - 2_000) < 260, `${delayed} delayed`);
    assert.ok(Math.abs(aborted - 6_000) < 390, `${aborted} aborted`);
    assert.ok(Math.abs(both - 600) < 150, `${both} both`);
  });
});

describe('retryBackoffMs', () => {
  it('waits at most base × (2^n − 1), capped at the max, and never less than 0', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: -1, max: 2, noNaN: true }),
        (n, rand) => {
          const ms = retryBackoffMs(n, rand);
          const ceiling = Math.min(
            RETRY_BACKOFF.baseIntervalMs * (2 ** Math.min(n, 30) - 1),
            RETRY_BACKOFF.maxIntervalMs,
          );
          assert.ok(Number.isInteger(ms) && ms >= 0 && ms < ceiling, `${ms} for retry ${n}, draw ${rand}`);
        },
      ),
    );
  });

  it('grows with the retries: 25, 75, 175, then 250 ms at the most', () => {
    const top = 1 - Number.EPSILON;
    assert.deepEqual(
      [1, 2, 3, 4, 10].map((n) => retryBackoffMs(n, top)),
      [24, 74, 174, 249, 249],
    );
    assert.equal(retryBackoffMs(1, 0), 0);
  });
});
