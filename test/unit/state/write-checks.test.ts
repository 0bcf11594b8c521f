// Write-time checks: a regex an entry matches against what callers send must be one V8's
// linear-time engine can match, so a crafted request can cost a bounded time. Asked when a command
// is written; apply still takes what an older version committed.
import '../../../src/polyfill.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { isValidationError, validateCommand, writeCheck } from '../../../src/core/state/index.js';
import type { Command } from '../../../src/core/state/types.js';
import { linearRegexProblem } from '../../../src/core/state/write-checks.js';

function validated(kind: string, name: string, spec: unknown): Command {
  const c = validateCommand({ op: 'config-set', kind, name, spec });
  assert.ok(!isValidationError(c), JSON.stringify(c));
  return c;
}

const routerWith = (http: object) =>
  validated('service-router', 'web', {
    routes: [{ match: { http: { pathPrefix: '/x/' } } }, { match: { http } }],
  });

describe('write checks: regexes must be matchable in linear time', () => {
  it('accepts the patterns routes are written with, nested repetition included', () => {
    for (const p of [
      '/api/v[0-9]+/.*',
      '/users/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
      '/(a+)+',
      '/(?<id>[^/]+)/items',
      '/(v1|v2)/.*?x',
    ]) {
      assert.equal(linearRegexProblem(p), undefined, p);
      assert.equal(writeCheck(routerWith({ pathRegex: p })), undefined, p);
    }
  });

  it('refuses backreferences, lookaround and counted repetition above 16, naming the field', () => {
    for (const p of ['/(a)\\1', '/(?<n>a)\\k<n>', '/(?=a)a', '/(?<!b)a', '/[a-z]{1,32}', '/(a{4}){5}']) {
      const bad = writeCheck(routerWith({ pathRegex: p }));
      assert.equal(bad?.field, 'spec.routes[1].match.http.pathRegex', p);
      assert.match(
        bad?.message ?? '',
        /cannot be matched in linear time.*backreferences.*lookahead.*above 16/,
        p,
      );
    }
  });

  it('finds header and query regexes in routes, intentions’ permissions and rate limits', () => {
    const lookahead = '(?=x)x';
    assert.equal(
      writeCheck(
        routerWith({
          header: [
            { name: 'x-a', exact: 'b' },
            { name: 'x-v', regex: lookahead },
          ],
        }),
      )?.field,
      'spec.routes[1].match.http.header[1].regex',
    );
    assert.equal(
      writeCheck(routerWith({ queryParam: [{ name: 'q', regex: lookahead }] }))?.field,
      'spec.routes[1].match.http.queryParam[0].regex',
    );
    const intentions = validated('service-intentions', 'web', {
      sources: [{ name: 'admin', permissions: [{ action: 'allow', http: { pathRegex: '/(a)\\1' } }] }],
    });
    assert.equal(writeCheck(intentions)?.field, 'spec.sources[0].permissions[0].http.pathRegex');
    const limits = validated('service-defaults', 'web', {
      protocol: 'http',
      rateLimits: {
        instanceLevel: { routes: [{ pathRegex: '/[a-z]{1,100}', requestsPerSecond: 5 }] },
      },
    });
    assert.equal(writeCheck(limits)?.field, 'spec.rateLimits.instanceLevel.routes[0].pathRegex');
  });

  it('checks only where a kind matches a regex, not free-form fields of the same name', () => {
    const defaults = validated('service-defaults', 'web', {
      protocol: 'http',
      meta: { regex: '[0-9]{1,32}', pathRegex: '(a)\\1' },
    });
    assert.equal(writeCheck(defaults), undefined);
    const proxy = validated('proxy-defaults', 'global', { config: { pathRegex: '(a)\\1' } });
    assert.equal(writeCheck(proxy), undefined);
  });

  it('does not check again a pattern the entry already holds, so other edits of it still work', () => {
    const old = '/(a)\\1';
    const before = validated('service-intentions', 'web', {
      sources: [{ name: 'admin', permissions: [{ action: 'allow', http: { pathRegex: old } }] }],
    });
    const previous = before.op === 'config-set' ? before.spec : undefined;
    // `mesh intention allow ops web` writes the entry back with one more source.
    const edited = validated('service-intentions', 'web', {
      sources: [
        { name: 'admin', permissions: [{ action: 'allow', http: { pathRegex: old } }] },
        { name: 'ops', action: 'allow' },
      ],
    });
    assert.equal(writeCheck(edited, previous), undefined);
    assert.equal(writeCheck(edited)?.field, 'spec.sources[0].permissions[0].http.pathRegex');
    // A pattern the write brings is checked, beside the one in force.
    const added = validated('service-intentions', 'web', {
      sources: [
        { name: 'admin', permissions: [{ action: 'allow', http: { pathRegex: old } }] },
        {
          name: 'ops',
          permissions: [{ action: 'allow', http: { header: [{ name: 'x', regex: '(?=y)y' }] } }],
        },
      ],
    });
    assert.equal(writeCheck(added, previous)?.field, 'spec.sources[1].permissions[0].http.header[0].regex');
  });

  it('leaves other commands alone', () => {
    const kv = validateCommand({ op: 'kv-set', key: 'regex', value: new Uint8Array([1]) });
    assert.ok(!isValidationError(kv));
    assert.equal(writeCheck(kv), undefined);
    const del = validateCommand({ op: 'config-delete', kind: 'service-router', name: 'web' });
    assert.ok(!isValidationError(del));
    assert.equal(writeCheck(del), undefined);
  });

  it('is not part of validateCommand, so an entry an older version committed still applies', () => {
    // validated() is what every agent's state machine runs on apply and snapshot restore.
    const c = routerWith({ pathRegex: '/(a)\\1' });
    assert.notEqual(writeCheck(c), undefined);
  });

  it('a pattern that backtracks badly ends in bounded time on the linear engine, in a worker thread too', async () => {
    // Without the fallback these are 2^2000 steps. Run in a worker thread (as the proxy's matches
    // are), so that a regression fails the test instead of blocking the test runner's thread.
    const code = `
      const { parentPort } = require('node:worker_threads');
      const path = '/' + 'a'.repeat(2000);
      const re = new RegExp('^(?:/(a+)+)$');
      const header = new RegExp('^(?:(x+x+)+y)$');
      parentPort.postMessage([re.test(path + '!'), re.test(path), header.test('x'.repeat(8192))]);`;
    const worker = new Worker(code, { eval: true });
    const timer = setTimeout(() => void worker.terminate(), 20_000);
    try {
      const got = await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', () => reject(new Error('the match did not end in 20 s: is the fallback off?')));
      });
      assert.deepEqual(got, [false, true, false]);
    } finally {
      clearTimeout(timer);
      await worker.terminate();
    }
  });
});

describe('write checks: entries named after a service use a service name', () => {
  it('refuses a service-defaults name no service can have, naming the field', () => {
    for (const name of ['my_svc.v1', 'web.v1', 'a_b']) {
      const c = validated('service-defaults', name, { protocol: 'http' });
      const bad = writeCheck(c);
      assert.equal(bad?.field, 'name', name);
      assert.match(bad?.message ?? '', /must be a service name: 1 to 63 lower-case letters, digits or '-'/);
    }
    assert.equal(writeCheck(validated('service-defaults', 'web-v1', { protocol: 'http' })), undefined);
  });

  it('leaves apply alone: a service-defaults entry an older version wrote under such a name still applies', () => {
    // validated() is what apply runs; only the write is refused, and a delete is never.
    validated('service-defaults', 'my_svc.v1', {});
    const del = validateCommand({ op: 'config-delete', kind: 'service-defaults', name: 'my_svc.v1' });
    assert.ok(!isValidationError(del));
    assert.equal(writeCheck(del), undefined);
  });
});
