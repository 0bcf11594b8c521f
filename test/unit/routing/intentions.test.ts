// Intentions: the most specific rule decides; the mesh default applies when none matches.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideIntention, decideIntentionFromRows, listIntentions } from '../../../src/core/routing/index.js';
import { compileL7Rule, decideRequest } from '../../../src/core/routing/intentions.js';
import type { RequestInfo } from '../../../src/core/routing/types.js';
import { lookupOf } from './helpers.js';

const entries: Array<[string, string, unknown]> = [
  [
    'service-intentions',
    'api',
    {
      sources: [
        { name: 'web', action: 'allow', description: 'storefront' },
        { name: '*', action: 'deny' },
      ],
    },
  ],
  [
    'service-intentions',
    '*',
    {
      sources: [
        { name: 'web', action: 'deny' },
        { name: 'batch', action: 'deny' },
        { name: '*', action: 'allow' },
      ],
    },
  ],
  ['service-intentions', 'db', { sources: [{ name: 'batch', action: 'allow' }] }],
];

describe('decideIntention', () => {
  const lookup = lookupOf(entries);

  it('applies the precedence table', () => {
    const table: Array<[string, string, string]> = [
      // source, destination, expected reason
      ['web', 'api', 'intention web→api allow'], // exact → exact beats web → *
      ['billing', 'api', 'intention *→api deny'], // * → exact beats * → *
      ['batch', 'db', 'intention batch→db allow'],
      ['web', 'db', 'intention web→* deny'], // exact → * beats * → *
      ['batch', 'cache', 'intention batch→* deny'],
      ['billing', 'cache', 'intention *→* allow'],
    ];
    for (const [source, destination, reason] of table) {
      const d = decideIntention(lookup, source, destination);
      assert.equal(d.reason, reason, `${source}→${destination}`);
      assert.equal(d.action, reason.endsWith('allow') ? 'allow' : 'deny');
    }
  });

  it('falls back to the mesh default, allow when unset', () => {
    const only = lookupOf([entries[2]!]);
    assert.deepEqual(decideIntention(only, 'web', 'db'), { action: 'allow', reason: 'default allow' });
    const denyAll = lookupOf([entries[2]!, ['mesh', 'global', { defaultIntention: 'deny' }]]);
    assert.deepEqual(decideIntention(denyAll, 'web', 'db'), {
      action: 'deny',
      reason: 'default deny (mesh global)',
    });
    assert.deepEqual(decideIntention(denyAll, 'batch', 'db'), {
      action: 'allow',
      reason: 'intention batch→db allow',
    });
  });

  it('agrees with the decision over listed rows', () => {
    const rows = listIntentions(entries.map(([kind, name, spec]) => ({ kind, name, spec })));
    for (const s of ['web', 'batch', 'billing']) {
      for (const d of ['api', 'db', 'cache']) {
        assert.deepEqual(
          decideIntentionFromRows(rows, 'allow', s, d),
          decideIntention(lookupOf(entries), s, d),
        );
      }
    }
    assert.deepEqual(decideIntentionFromRows([], 'deny', 'a', 'b'), {
      action: 'deny',
      reason: 'default deny',
    });
  });
});

describe('listIntentions', () => {
  it('flattens every entry, most specific first, then by names', () => {
    const rows = listIntentions([
      ...entries.map(([kind, name, spec]) => ({ kind, name, spec })),
      { kind: 'service-defaults', name: 'api', spec: { protocol: 'http' } },
    ]);
    assert.deepEqual(
      rows.map((r) => `${r.precedence} ${r.source}→${r.destination} ${r.action} ${r.description}`.trim()),
      [
        '9 web→api allow storefront',
        '9 batch→db allow',
        '8 *→api deny',
        '6 batch→* deny',
        '6 web→* deny',
        '5 *→* allow',
      ],
    );
  });
});

describe('L7 intentions (permissions)', () => {
  const l7: Array<[string, string, unknown]> = [
    [
      'service-intentions',
      'api',
      {
        sources: [
          {
            name: 'web',
            permissions: [
              { action: 'deny', http: { pathPrefix: '/admin/' } },
              { action: 'allow', http: { methods: ['GET', 'HEAD'] } },
              { action: 'allow', http: { pathExact: '/orders', header: [{ name: 'x-team', exact: 'ops' }] } },
            ],
          },
          { name: '*', action: 'allow' },
        ],
      },
    ],
    ['mesh', 'global', { defaultIntention: 'deny' }],
  ];
  const req = (method: string, target: string, headers: Record<string, string> = {}): RequestInfo => {
    const q = target.indexOf('?');
    return {
      method,
      path: q < 0 ? target : target.slice(0, q),
      query: q < 0 ? '' : target.slice(q + 1),
      headers,
    };
  };

  it('denies a connection (L4) from a source whose rule has permissions, as Consul does, and says why', () => {
    const d = decideIntention(lookupOf(l7), 'web', 'api');
    assert.equal(d.action, 'deny');
    assert.equal(d.reason, 'intention web→api has L7 permissions: a connection without requests is denied');
    assert.equal(d.l7?.permissions.length, 3);
    // Another source still gets its L4 rule; the permissions of web do not leak to it.
    assert.deepEqual(decideIntention(lookupOf(l7), 'batch', 'api'), {
      action: 'allow',
      reason: 'intention *→api allow',
    });
  });

  it('decides each request by the first permission that matches, else by the mesh default', () => {
    const d = decideIntention(lookupOf(l7), 'web', 'api');
    const rule = compileL7Rule(d.l7 ?? assert.fail('an L7 rule'));
    const table: Array<[RequestInfo, string, string]> = [
      [req('GET', '/admin/users'), 'deny', 'intention web→api permission 1 deny'],
      [req('GET', '/orders?id=3'), 'allow', 'intention web→api permission 2 allow'],
      [req('POST', '/orders', { 'x-team': 'ops' }), 'allow', 'intention web→api permission 3 allow'],
      [
        req('POST', '/orders', { 'x-team': 'dev' }),
        'deny',
        'intention web→api: no permission matched; default deny (mesh global)',
      ],
      [
        req('DELETE', '/orders'),
        'deny',
        'intention web→api: no permission matched; default deny (mesh global)',
      ],
    ];
    for (const [r, action, reason] of table) {
      assert.deepEqual(decideRequest(rule, r), { action, reason }, `${r.method} ${r.path}`);
    }
    // With the mesh default allow, a request no permission matches is allowed.
    const open = decideIntention(lookupOf([l7[0] as [string, string, unknown]]), 'web', 'api');
    assert.deepEqual(decideRequest(compileL7Rule(open.l7 ?? assert.fail('an L7 rule')), req('PUT', '/x')), {
      action: 'allow',
      reason: 'intention web→api: no permission matched; default allow',
    });
  });

  it('lists an L7 rule with its permissions, and the listed rows decide as the entries do', () => {
    const rows = listIntentions(l7.map(([kind, name, spec]) => ({ kind, name, spec })));
    const web = rows.find((r) => r.source === 'web');
    assert.equal(web?.action, 'permissions');
    assert.equal(web?.permissions?.length, 3);
    const fromRows = decideIntentionFromRows(rows, 'deny', 'web', 'api');
    assert.equal(fromRows.action, 'deny');
    assert.deepEqual(fromRows.l7?.permissions, decideIntention(lookupOf(l7), 'web', 'api').l7?.permissions);
  });
});
