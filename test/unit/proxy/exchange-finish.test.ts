// An HTTP/1.1 exchange's finish hook, which gives a circuit breaker's slot back: it runs once on
// every way the exchange ends, the handler's own failures included (answered 500 by the exchange),
// and before the connection moves on to its next (pipelined) request.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Exchange, type ExchangeHost } from '../../../src/proxy/h1/exchange.js';
import { type Head, parseHead } from '../../../src/proxy/h1/head.js';
import type { RelaySocket } from '../../../src/proxy/h1/pool.js';
import { until } from './harness.js';

function exchange(): { ex: Exchange; events: string[]; written: () => string } {
  const events: string[] = [];
  let out = '';
  const socket = {
    write: (d: string | Buffer) => {
      out += d.toString();
      return true;
    },
    pause: () => undefined,
    resume: () => undefined,
    destroy: () => undefined,
  } as unknown as RelaySocket;
  const host: ExchangeHost = {
    socket,
    buf: Buffer.alloc(0),
    closed: false,
    exchangeDone: () => events.push('done'),
    detach: () => undefined,
  };
  const r = parseHead(Buffer.from('GET /x HTTP/1.1\r\nhost: api\r\n\r\n'), 0, 'request');
  assert.equal(r.kind, 'head');
  const ex = new Exchange(host, (r as { head: Head }).head);
  ex.onFinish(() => events.push('hook'));
  return { ex, events, written: () => out };
}

describe('an exchange’s finish hook', () => {
  it('runs once, before the connection moves on', () => {
    const { ex, events } = exchange();
    ex.finish();
    ex.finish();
    assert.deepEqual(events, ['hook', 'done']);
  });

  it('runs when the step a wake-up starts throws: the caller gets 500', () => {
    const { ex, events, written } = exchange();
    ex.defer(
      60_000,
      () => assert.fail('not woken by the timer'),
      () => assert.fail('not gone'),
    );
    ex.wake(() => {
      throw new Error('handler bug');
    });
    assert.deepEqual(events, ['hook', 'done']);
    assert.match(written(), /^HTTP\/1\.1 500 /);
  });

  it('runs when the step after a wait throws: the caller gets 500', async () => {
    const { ex, events, written } = exchange();
    ex.defer(
      1,
      () => {
        throw new Error('handler bug');
      },
      () => assert.fail('not gone'),
    );
    await until(() => events.length === 2, 'the exchange finished');
    assert.deepEqual(events, ['hook', 'done']);
    assert.match(written(), /^HTTP\/1\.1 500 /);
  });
});
