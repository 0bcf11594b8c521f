// The normal form of a request path that L7 intentions also decide on: examples, and properties
// over random paths from a seeded generator (idempotent, no dot segment or "//" left, a path
// already normal is returned as the same string).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import { compileL7Rule, decideIntention, decideRequest } from '../../../src/core/routing/intentions.js';
import { normalizePath } from '../../../src/core/routing/path-normal.js';
import type { RequestInfo } from '../../../src/core/routing/types.js';
import { lookupOf } from './helpers.js';

const RUNS = 2_000;
const PIECES = [
  'a',
  'admin',
  'b',
  '.',
  '..',
  '',
  '%2e',
  '%2E%2e',
  '%61',
  '%2F',
  '%2f',
  '%20',
  '%zz',
  '~',
  'x.y',
];

describe('normalizePath', () => {
  it('sees through escapes, dot segments, repeated slashes and the absolute form', () => {
    const table: Array<[string, string]> = [
      ['/admin/users', '/admin/users'],
      ['/%61dmin/users', '/admin/users'],
      ['/%61DMIN', '/aDMIN'],
      ['//admin//users', '/admin/users'],
      ['/x/../admin/', '/admin/'],
      ['/./admin', '/admin'],
      ['/%2e%2E/admin', '/admin'],
      ['/public/..%2fadmin', '/admin'],
      ['/a/b/..', '/a/'],
      ['/..', '/'],
      ['/', '/'],
      ['http://api/admin/x', '/admin/x'],
      ['http://api', '/'],
      ['/a%20b%2a', '/a%20b%2A'],
      ['/bad%zz', '/bad%zz'],
      ['*', '*'],
      ['/admin#x', '/admin'],
      ['/admin;jsessionid=1/x', '/admin/x'],
      ['\\admin\\x', '/admin/x'],
    ];
    for (const [path, normal] of table) assert.equal(normalizePath(path), normal, path);
  });

  it('is idempotent, leaves no dot segment or "//", and returns a normal path as the same string', () => {
    const rng = new SeededRng(7);
    for (let run = 0; run < RUNS; run++) {
      const n = 1 + rng.int(6);
      const path = `/${Array.from({ length: n }, () => PIECES[rng.int(PIECES.length)]).join('/')}`;
      const once = normalizePath(path);
      assert.equal(normalizePath(once), once, `idempotent for ${path}`);
      assert.ok(once.startsWith('/'), path);
      assert.ok(!once.includes('//'), `${path} → ${once}`);
      assert.ok(!/\/\.\.?(\/|$)/.test(once), `${path} → ${once}`);
      assert.ok(
        !/%(2[eEfF]|6[1-9a-fA-F]|7[0-9aA])/.test(once),
        `${path} → ${once}: an unreserved escape left`,
      );
    }
  });
});

describe('L7 intentions on paths not in normal form', () => {
  const req = (path: string, method = 'GET'): RequestInfo => ({ path, method, query: '', headers: {} });
  const rule = (permissions: unknown[]) => {
    const d = decideIntention(
      lookupOf([
        ['service-intentions', 'api', { sources: [{ name: 'web', permissions }] }],
        ['mesh', 'global', { defaultIntention: 'deny' }],
      ]),
      'web',
      'api',
    );
    return compileL7Rule(d.l7 ?? assert.fail('an L7 rule'));
  };

  it('denies /admin/ however its path is written', () => {
    const r = rule([
      { action: 'deny', http: { pathPrefix: '/admin/' } },
      { action: 'allow', http: {} },
    ]);
    for (const p of [
      '/admin/x',
      '/%61dmin/x',
      '//admin/x',
      '/public/../admin/x',
      '/./admin/x',
      'http://api/admin/x',
    ]) {
      assert.equal(decideRequest(r, req(p)).action, 'deny', p);
    }
    assert.equal(decideRequest(r, req('/public/x')).action, 'allow');
  });

  it('allows only /public/ when that is all a permission allows, however the path climbs out of it', () => {
    const r = rule([{ action: 'allow', http: { pathPrefix: '/public/' } }]);
    assert.equal(decideRequest(r, req('/public/a')).action, 'allow');
    for (const p of ['/public/../admin', '/public/%2e%2e/admin', '/public/..%2Fadmin']) {
      const d = decideRequest(r, req(p));
      assert.equal(d.action, 'deny', p);
      assert.match(d.reason, /no permission matched; default deny/);
    }
  });
});
