// Intentions: the most specific rule decides; the mesh default applies when none matches.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideIntention, decideIntentionFromRows, listIntentions } from '../../../src/core/routing/index.js';
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
