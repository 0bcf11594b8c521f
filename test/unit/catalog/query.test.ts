// The catalog's answers about service weights: each instance's weights in the catalog API, and
// the SRV weight DNS gets, by health (passing, warning, critical).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LocalServices } from '../../../src/catalog/local.js';
import { CatalogQuery } from '../../../src/catalog/query.js';
import { Catalog } from '../../../src/core/catalog/catalog.js';
import type { CheckStatus, Instance } from '../../../src/core/catalog/types.js';
import type { Member } from '../../../src/core/membership/types.js';
import { StateMachine } from '../../../src/core/state/state-machine.js';

const member: Member = {
  id: 'self',
  name: 'n1',
  address: '127.0.0.1:7400',
  zone: '',
  meta: {},
  status: 'alive',
  incarnation: 0,
  statusChangedAtMs: 0,
};

const web = (id: string, status: CheckStatus, weights?: { passing: number; warning: number }): Instance => ({
  id,
  name: 'web',
  address: '',
  port: 8080,
  tags: [],
  meta: {},
  protocol: 'http',
  checks: [{ id: 'c', name: 'c', type: 'ttl', status, output: '' }],
  ...(weights !== undefined ? { weights } : {}),
});

function query(instances: Instance[]): CatalogQuery {
  const catalog = new Catalog('self', 0);
  catalog.setLocal(instances);
  const sm = new StateMachine();
  return new CatalogQuery({
    catalog,
    member: (id) => (id === 'self' ? member : undefined),
    members: () => [member],
    state: () => sm,
    local: { list: () => [], checks: () => [] } as unknown as LocalServices,
  });
}

describe('service weights in the catalog’s answers', () => {
  const q = query([
    web('heavy', 'passing', { passing: 10, warning: 2 }),
    web('plain', 'passing'),
    web('warned', 'warning', { passing: 10, warning: 2 }),
    web('idle', 'warning', { passing: 10, warning: 0 }),
    web('down', 'critical', { passing: 10, warning: 2 }),
  ]);

  it('shows every instance’s weights, 1 and 1 when it has none', () => {
    const byId = Object.fromEntries(q.instances('web').map((i) => [i.id, i.weights]));
    assert.deepEqual(byId, {
      down: { passing: 10, warning: 2 },
      heavy: { passing: 10, warning: 2 },
      idle: { passing: 10, warning: 0 },
      plain: { passing: 1, warning: 1 },
      warned: { passing: 10, warning: 2 },
    });
  });

  it('gives DNS each healthy instance’s weight at its health; a warning weight of 0 stays listed', () => {
    const srv = (q.healthyInstances('web', undefined) ?? []).map((i) => [i.port, i.weight]);
    assert.equal(srv.length, 4, 'critical left out');
    assert.deepEqual(
      srv.map((x) => x[1]).sort((a, b) => (a as number) - (b as number)),
      [0, 1, 2, 10],
    );
  });
});
