// Who the CA gives what: the CA key only to Raft voters and learners; a leaf only to an agent that
// hosts an instance of the service (by the signing agent's catalog); keys dropped once this agent
// is no longer a voter; rotations keep the roots whose leaves may be in use. The manager is driven
// with stand-ins for Raft, the catalog and the store: `from` is the caller's authenticated libp2p
// id, as the Raft client protocol hands it over.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { MeshError } from '../../../src/api/types.js';
import { CaManager, type CaManagerInit } from '../../../src/ca/manager.js';
import { spiffeId } from '../../../src/ca/spiffe.js';
import { type CaRoot, createLeafKeyAndCsr, createRoot } from '../../../src/ca/x509.js';
import { CA_ROOTS_LIMITS, type CaRootsSpec } from '../../../src/core/state/kinds/ca-roots.js';

const TD = '0a1b2c3d4e5f6071.mesh';
const SELF = 'agent-self';
const VOTER = 'agent-voter';
const LEARNER = 'agent-learner';
const REPLICA = 'agent-replica';

/** What the stand-ins answer; the test changes it between steps. */
interface World {
  voters: string[];
  learners: string[];
  /** Service names each agent hosts, as the catalog says. */
  hosts: Record<string, string[]>;
}

describe('the cluster CA: who gets keys and leaves', () => {
  let root: CaRoot;
  const world: World = { voters: [SELF, VOTER], learners: [LEARNER], hosts: {} };
  const stored = new Map<string, string>();
  let ca: CaManager;
  /** The committed ca-roots entry. */
  let entry: { spec: CaRootsSpec; modifyIndex: number };

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: 3_600_000 });
    stored.set(`ca/key/${root.id}`, root.keyPem);
    entry = {
      spec: {
        trustDomain: TD,
        activeRootId: root.id,
        roots: [{ id: root.id, certPem: root.certPem, notAfterMs: root.notAfterMs }],
      },
      modifyIndex: 1,
    };
    const init = {
      selfId: SELF,
      raft: {
        state: {
          configGet: (kind: string) => (kind === 'ca-roots' ? entry : undefined),
        },
        status: () => ({ conf: { voters: world.voters, learners: world.learners } }),
        isLeader: true,
        leader: SELF,
      },
      // A Raft write of ca-roots, applied at once when its compare-and-set index matches.
      controlPlane: {
        write: async (cmd: { kind: string; spec: CaRootsSpec; cas: number }) => {
          if (cmd.kind !== 'ca-roots' || cmd.cas !== entry.modifyIndex) return { ok: false };
          entry = { spec: cmd.spec, modifyIndex: entry.modifyIndex + 1 };
          return { ok: true };
        },
      },
      call: async () => {
        throw new Error('no peers here');
      },
      catalog: { nodeInstances: (node: string) => (world.hosts[node] ?? []).map((name) => ({ name })) },
      store: {
        range: async (from: string, to: string) =>
          [...stored].filter(([k]) => k >= from && k < to).map(([k, v]) => [k, new TextEncoder().encode(v)]),
        put: async (k: string, v: string) => void stored.set(k, v),
        batch: async (ops: Array<{ type: 'del'; key: string }>) => {
          for (const op of ops) stored.delete(op.key);
        },
      },
      log: pino({ level: 'silent' }),
      leafTtlMs: 3_600_000,
    } as unknown as CaManagerInit;
    ca = new CaManager(init);
    await ca.start();
  });

  after(() => ca.stop());

  /** The MeshError code `p` was refused with. */
  async function refusal(p: Promise<unknown>): Promise<string> {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof MeshError, `a MeshError, not ${String(err)}`);
      return err.code;
    }
    assert.fail('not refused');
  }

  it('gives the CA key to voters and learners only', async () => {
    for (const from of [VOTER, LEARNER]) {
      const r = (await ca.handle({ op: 'ca-key', rootId: root.id }, from)) as { keyPem: string };
      assert.equal(r.keyPem, root.keyPem, from);
    }
    assert.equal(await refusal(ca.handle({ op: 'ca-key', rootId: root.id }, REPLICA)), 'forbidden');
    assert.equal(await refusal(ca.handle({ op: 'ca-key', rootId: 'no-such-root' }, VOTER)), 'not_found');
  });

  it('signs a leaf only for a service the asking agent hosts, naming that service', async () => {
    world.hosts = { [REPLICA]: ['web'] };
    const web = await createLeafKeyAndCsr({ trustDomain: TD, service: 'web' });
    const leaf = await ca.handle({ op: 'ca-sign', service: 'web', csrPem: web.csrPem }, REPLICA);
    const { certPem, rootId } = leaf as { certPem: string; rootId: string };
    assert.equal(rootId, root.id);
    const cert = new X509Certificate(certPem);
    assert.ok(cert.verify(new X509Certificate(root.certPem).publicKey), 'signed by the root');
    assert.match(cert.subjectAltName ?? '', new RegExp(`URI:${spiffeId(TD, 'web')}`));

    const refusedBefore = ca.counters.signRefused;
    const db = await createLeafKeyAndCsr({ trustDomain: TD, service: 'db' });
    // The replica hosts web, not db: a leaf for db would let it impersonate db.
    assert.equal(
      await refusal(ca.handle({ op: 'ca-sign', service: 'db', csrPem: db.csrPem }, REPLICA)),
      'forbidden',
    );
    // Another agent hosts nothing at all.
    assert.equal(
      await refusal(ca.handle({ op: 'ca-sign', service: 'web', csrPem: web.csrPem }, VOTER)),
      'forbidden',
    );
    assert.equal(ca.counters.signRefused, refusedBefore + 2);
  });

  it('rotations keep trusting the roots they replace while their leaves may live, then refuse', async () => {
    const ids = [root.id];
    for (let i = 1; i < CA_ROOTS_LIMITS.rootsMax; i++) ids.unshift(await ca.rotate());
    assert.deepEqual(
      entry.spec.roots.map((r) => r.id),
      ids,
      'every root, newest first',
    );
    assert.equal(entry.spec.activeRootId, ids[0]);
    assert.ok(entry.spec.roots.slice(1).every((r) => typeof r.rotatedOutAtMs === 'number'));
    const keys = stored.size;
    assert.equal(await refusal(ca.rotate()), 'conflict');
    await assert.rejects(ca.rotate(), /already trusts 4 roots.*Rotate after \d{4}-/);
    assert.equal(stored.size, keys, 'a refused rotation stores no key');
    assert.equal(entry.spec.activeRootId, ids[0]);
  });

  it('drops its CA key once it is no longer a voter or learner', async () => {
    world.voters = [VOTER];
    // The upkeep runs every second.
    for (let i = 0; i < 100 && stored.size > 0; i++) await sleep(50);
    assert.equal(stored.size, 0, 'the key is gone from the store');
    assert.equal(
      await refusal(ca.handle({ op: 'ca-key', rootId: root.id }, VOTER)),
      'not_found',
      'and is given to no one',
    );
  });
});
