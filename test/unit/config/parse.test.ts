import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MeshError } from '../../../src/api/types.js';
import { validateJoinAddress } from '../../../src/config/host-port.js';
import { parseDurationMs, parseHostPort } from '../../../src/config/load.js';

describe('parseHostPort', () => {
  it('parses IPv4, bracketed IPv6 and DNS names', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:7400', 'x'), { host: '10.0.0.1', port: 7400 });
    assert.deepEqual(parseHostPort('[::1]:7400', 'x'), { host: '::1', port: 7400 });
    assert.deepEqual(parseHostPort('[fe80::1%eth0]:1', 'x').port, 1);
    assert.deepEqual(parseHostPort('node-1.example.com:65535', 'x'), {
      host: 'node-1.example.com',
      port: 65535,
    });
    assert.deepEqual(parseHostPort('localhost:0', 'x'), { host: 'localhost', port: 0 });
  });

  it('rejects malformed addresses with the given prefix', () => {
    const bad = [
      '10.0.0.1',
      '10.0.0.1:65536',
      '10.0.0.1:-1',
      '::1:7400',
      '[::1]7400',
      '[nope]:1',
      ':7400',
      'a..b:1',
      '999.1.1.1:1',
      '10.0.0.1:',
      'host:12a',
      '-bad.example:1',
      '',
    ];
    for (const s of bad) {
      assert.throws(
        () => parseHostPort(s, '--bind'),
        (err: unknown) =>
          err instanceof MeshError && err.code === 'bad_request' && err.message.startsWith('--bind: '),
        s,
      );
    }
    assert.throws(() => parseHostPort(7400, '--bind'), /got number 7400/);
  });

  it('join addresses: port 1.. and multiaddrs', () => {
    assert.equal(validateJoinAddress('/ip4/10.0.0.1/tcp/7400', 'x'), '/ip4/10.0.0.1/tcp/7400');
    assert.equal(validateJoinAddress('[::1]:7400', 'x'), '[::1]:7400');
    assert.throws(() => validateJoinAddress('10.0.0.1:0', 'x'), /port must be a number from 1/);
    assert.throws(() => validateJoinAddress('/ip4', 'x'), /multiaddr/);
    assert.throws(() => validateJoinAddress('//', 'x'), /multiaddr/);
  });
});

describe('parseDurationMs', () => {
  it('accepts units and plain milliseconds', () => {
    assert.equal(parseDurationMs('500ms', 'x'), 500);
    assert.equal(parseDurationMs('2s', 'x'), 2000);
    assert.equal(parseDurationMs('1.5s', 'x'), 1500);
    assert.equal(parseDurationMs('1m', 'x'), 60_000);
    assert.equal(parseDurationMs('1h', 'x'), 3_600_000);
    assert.equal(parseDurationMs(250, 'x'), 250);
    assert.equal(parseDurationMs('250', 'x'), 250);
    assert.equal(parseDurationMs(0, 'x'), 0);
  });

  it('rejects what is not a duration as a bad format, naming the option', () => {
    for (const v of [
      '5x',
      '',
      's',
      '1 s',
      '30d',
      '--1s',
      '1e3',
      Number.NaN,
      Number.POSITIVE_INFINITY,
      true,
    ]) {
      assert.throws(
        () => parseDurationMs(v, '--leave-timeout'),
        /^MeshError: --leave-timeout: expected a duration/,
        String(v),
      );
    }
  });

  it('reports a well-written duration out of range as a range error, with the range', () => {
    for (const v of ['-1s', -1, '-0.3', '100000h', 2 ** 31]) {
      assert.throws(
        () => parseDurationMs(v, '--leave-timeout'),
        /^MeshError: --leave-timeout: must be from 0ms to 2147483647ms \(about 24\.8 days, the longest a timer can wait\), got /,
        String(v),
      );
    }
    const range = { minMs: 60_000, maxMs: 3_600_000, minWhy: 'too short to renew' };
    assert.throws(
      () => parseDurationMs('10s', 'x', range),
      /^MeshError: x: must be from 1m to 1h, got "10s" \(too short to renew\)$/,
    );
    assert.throws(() => parseDurationMs('2h', 'x', range), /^MeshError: x: must be from 1m to 1h, got "2h"$/);
    assert.equal(parseDurationMs('1h', 'x', range), 3_600_000);
    assert.equal(parseDurationMs(2 ** 31 - 1, 'x'), 2 ** 31 - 1);
  });
});
