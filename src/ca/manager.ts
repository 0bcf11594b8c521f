// The cluster CA, run by the agents themselves (no CA server):
// - The Raft leader creates the root when the cluster has none, and on `mesh ca rotate` a new
//   one cross-signed by the old. The roots' certificates go into the replicated `ca-roots` entry;
//   the private keys stay in the LevelDB of the voters (`ca/key/<root id>`), never in the log.
// - A voter that lacks the active key fetches it from the leader over the Raft client protocol
//   (libp2p: the peer is authenticated by its key); the leader gives it only to voters and learners.
// - Any agent holding the active key signs leaf CSRs, for an agent that — by the signer's own
//   catalog — hosts an instance of the service named. The caller's libp2p identity is the proof.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import type { Catalog } from '../core/catalog/catalog.js';
import {
  CA_ROOTS_NAME,
  type CaRootRecord,
  type CaRootsSpec,
  ROTATED_ROOT_MARGIN_MS,
  rootsKeptByRotation,
} from '../core/state/kinds/ca-roots.js';
import type { ControlPlane } from '../raft/control-plane.js';
import type { RaftService } from '../raft/service.js';
import type { Store } from '../store/store.js';
import { createRoot, crossSign, signLeaf } from './x509.js';

/** Roots live ten years: rotation is an operator's choice (or a key compromise), not a deadline. */
const ROOT_TTL_MS = 10 * 365 * 24 * 3_600_000;
const KEY_PREFIX = 'ca/key/';
const CHECK_INTERVAL_MS = 1_000;

export type CaRequest =
  | { op: 'ca-key'; rootId: string }
  | { op: 'ca-sign'; service: string; csrPem: string }
  | { op: 'ca-rotate' };

export interface IssuedLeaf {
  certPem: string;
  /** Intermediates to send after the leaf: the cross-signed active root during a rotation. */
  chainPem: string[];
  notAfterMs: number;
  rootId: string;
}

export interface CaManagerInit {
  selfId: string;
  raft: RaftService;
  controlPlane: ControlPlane;
  call: (to: string, req: CaRequest, timeoutMs: number) => Promise<unknown>;
  catalog: Catalog;
  store: Store;
  log: Logger;
  /** Lifetime of the leaf certificates this agent signs (when it is a voter). */
  leafTtlMs: number;
}

export function rootsOf(raft: RaftService): CaRootsSpec | undefined {
  return raft.state.configGet('ca-roots', CA_ROOTS_NAME)?.spec as CaRootsSpec | undefined;
}

export class CaManager {
  private readonly keys = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private rotating = false;
  readonly counters = { signed: 0, signRefused: 0, keysFetched: 0, rootsCreated: 0 };

  constructor(private readonly init: CaManagerInit) {}

  async start(): Promise<void> {
    for (const [key, value] of await this.init.store.range(KEY_PREFIX, `${KEY_PREFIX}\uffff`, 64)) {
      this.keys.set(key.slice(KEY_PREFIX.length), new TextDecoder().decode(value));
    }
    this.timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  roots(): CaRootsSpec | undefined {
    return rootsOf(this.init.raft);
  }

  /** Leader: create the first root. Voter: fetch the active key if missing. */
  private async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const roots = this.roots();
      if (roots === undefined) {
        if (this.init.raft.isLeader) await this.createFirstRoot();
        return;
      }
      const conf = this.init.raft.status().conf;
      const member = conf.voters.includes(this.init.selfId) || conf.learners.includes(this.init.selfId);
      // Keys are only for voters and learners, and only of the roots still listed.
      const keep = new Set(member ? roots.roots.map((r) => r.id) : []);
      for (const id of [...this.keys.keys()]) {
        // A rotation saves its new key before the entry naming it commits.
        if (keep.has(id) || this.rotating) continue;
        await this.init.store.batch([{ type: 'del', key: `${KEY_PREFIX}${id}` }]);
        this.keys.delete(id);
        this.init.log.info({ rootId: id.slice(0, 16) }, 'dropped a CA key this agent no longer needs');
      }
      if (!member || this.keys.has(roots.activeRootId)) return;
      // From the leader; a leader that lacks it (elected before it fetched) asks another voter.
      const from = this.init.raft.isLeader
        ? conf.voters.find((v) => v !== this.init.selfId)
        : this.init.raft.leader || undefined;
      if (from === undefined) return;
      const r = (await this.init.call(from, { op: 'ca-key', rootId: roots.activeRootId }, 5_000)) as {
        keyPem?: unknown;
      };
      if (typeof r?.keyPem !== 'string') throw new Error('the peer sent no key');
      await this.saveKey(roots.activeRootId, r.keyPem);
      this.counters.keysFetched++;
      this.init.log.info({ rootId: roots.activeRootId.slice(0, 16), from }, 'obtained the CA key');
    } catch (err) {
      this.init.log.warn({ err: (err as Error).message }, 'CA upkeep failed; retrying');
    } finally {
      this.busy = false;
    }
  }

  private async saveKey(rootId: string, keyPem: string): Promise<void> {
    await this.init.store.put(`${KEY_PREFIX}${rootId}`, keyPem);
    this.keys.set(rootId, keyPem);
  }

  private async createFirstRoot(): Promise<void> {
    const trustDomain = `${randomBytes(8).toString('hex')}.mesh`;
    const root = await createRoot({ trustDomain, nowMs: Date.now(), ttlMs: ROOT_TTL_MS });
    await this.saveKey(root.id, root.keyPem);
    const spec: CaRootsSpec = {
      trustDomain,
      activeRootId: root.id,
      roots: [{ id: root.id, certPem: root.certPem, notAfterMs: root.notAfterMs }],
    };
    // cas 0: only if no other leader wrote one meanwhile.
    const r = await this.init.controlPlane.write({
      op: 'config-set',
      kind: 'ca-roots',
      name: CA_ROOTS_NAME,
      spec,
      cas: 0,
    });
    if (!r.ok) return;
    this.counters.rootsCreated++;
    this.init.log.info({ trustDomain, rootId: root.id.slice(0, 16) }, 'created the cluster CA');
  }

  /** `mesh ca rotate`: a new root, cross-signed by the active one; leaves re-issue under it. */
  async rotate(): Promise<string> {
    if (!this.init.raft.isLeader) {
      const leader = this.init.raft.leader;
      if (!leader) throw new MeshError('unavailable', 'no raft leader to rotate the CA');
      return (await this.init.call(leader, { op: 'ca-rotate' }, 15_000)) as string;
    }
    if (this.rotating) throw new MeshError('conflict', 'a rotation is already running; retry');
    this.rotating = true;
    try {
      return await this.rotateHere();
    } finally {
      this.rotating = false;
    }
  }

  private async rotateHere(): Promise<string> {
    const entry = this.init.raft.state.configGet('ca-roots', CA_ROOTS_NAME);
    const cur = entry?.spec as CaRootsSpec | undefined;
    if (!entry || !cur)
      throw new MeshError('unavailable', 'the cluster CA is not created yet; retry in a moment');
    const old = cur.roots.find((r) => r.id === cur.activeRootId) as CaRootRecord;
    const oldKey = this.keys.get(old.id);
    if (!oldKey) throw new MeshError('unavailable', 'this leader lacks the active CA key; retry in a moment');
    const now = Date.now();
    // Checked before the new key is made: a refused rotation leaves nothing behind.
    const kept = rootsKeptByRotation(cur, now, this.init.leafTtlMs + ROTATED_ROOT_MARGIN_MS);
    if (!kept.ok) {
      throw new MeshError(
        'conflict',
        `the cluster already trusts ${kept.replaced + 1} roots: the active one and ${kept.replaced} ` +
          'replaced within the leaf lifetime, whose leaves may still be in use; a rotation now would ' +
          `stop trusting one of them. Rotate after ${new Date(kept.retryAtMs).toISOString()}`,
      );
    }
    const root = await createRoot({ trustDomain: cur.trustDomain, nowMs: now, ttlMs: ROOT_TTL_MS });
    const crossSignedPem = await crossSign({
      newRootCertPem: root.certPem,
      oldRootCertPem: old.certPem,
      oldRootKeyPem: oldKey,
      nowMs: now,
      ttlMs: Math.max(60_000, old.notAfterMs - now),
    });
    await this.saveKey(root.id, root.keyPem);
    const spec: CaRootsSpec = {
      trustDomain: cur.trustDomain,
      activeRootId: root.id,
      roots: [
        { id: root.id, certPem: root.certPem, crossSignedPem, notAfterMs: root.notAfterMs },
        ...kept.roots,
      ],
    };
    const r = await this.init.controlPlane.write({
      op: 'config-set',
      kind: 'ca-roots',
      name: CA_ROOTS_NAME,
      spec,
      cas: entry.modifyIndex,
    });
    if (!r.ok) throw new MeshError('conflict', 'the CA changed during the rotation; retry');
    this.init.log.info(
      { rootId: root.id.slice(0, 16), previous: old.id.slice(0, 16) },
      'rotated the cluster CA',
    );
    return root.id;
  }

  /** Issue a leaf for a service of this agent: signed here if this agent holds the key, else by the leader. */
  async issue(service: string, csrPem: string): Promise<IssuedLeaf> {
    const roots = this.roots();
    if (roots === undefined) throw new MeshError('unavailable', 'the cluster CA is not created yet');
    if (this.keys.has(roots.activeRootId)) return this.sign(service, csrPem, this.init.selfId);
    const leader = this.init.raft.leader;
    if (!leader) throw new MeshError('unavailable', 'no raft leader to sign certificates');
    return parseIssued(await this.init.call(leader, { op: 'ca-sign', service, csrPem }, 10_000));
  }

  /** Serve the CA's part of the Raft client protocol. `from` is the caller's authenticated id. */
  async handle(req: CaRequest, from: string): Promise<unknown> {
    switch (req.op) {
      case 'ca-key': {
        const conf = this.init.raft.status().conf;
        if (!conf.voters.includes(from) && !conf.learners.includes(from)) {
          throw new MeshError('forbidden', 'the CA key is only given to raft voters and learners');
        }
        const keyPem = this.keys.get(req.rootId);
        if (!keyPem) throw new MeshError('not_found', 'this agent does not hold that CA key');
        return { keyPem };
      }
      case 'ca-sign':
        return this.sign(req.service, req.csrPem, from);
      case 'ca-rotate':
        return this.rotate();
    }
  }

  private async sign(service: string, csrPem: string, from: string): Promise<IssuedLeaf> {
    const roots = this.roots();
    const keyPem = roots ? this.keys.get(roots.activeRootId) : undefined;
    if (!roots || !keyPem) throw new MeshError('unavailable', 'this agent does not hold the active CA key');
    const hosts = this.init.catalog.nodeInstances(from).some((i) => i.name === service);
    if (!hosts) {
      this.counters.signRefused++;
      throw new MeshError(
        'forbidden',
        `agent ${from} hosts no instance of ${service} (as this agent's catalog says)`,
      );
    }
    const active = roots.roots.find((r) => r.id === roots.activeRootId) as CaRootRecord;
    const leaf = await signLeaf({
      csrPem,
      caCertPem: active.certPem,
      caKeyPem: keyPem,
      trustDomain: roots.trustDomain,
      service,
      nowMs: Date.now(),
      ttlMs: this.init.leafTtlMs,
    });
    this.counters.signed++;
    return {
      certPem: leaf.certPem,
      chainPem: active.crossSignedPem ? [active.crossSignedPem] : [],
      notAfterMs: leaf.notAfterMs,
      rootId: active.id,
    };
  }
}

function parseIssued(v: unknown): IssuedLeaf {
  const o = v as Partial<IssuedLeaf> | null;
  if (
    !o ||
    typeof o.certPem !== 'string' ||
    !Array.isArray(o.chainPem) ||
    !o.chainPem.every((c) => typeof c === 'string') ||
    typeof o.notAfterMs !== 'number' ||
    typeof o.rootId !== 'string'
  ) {
    throw new MeshError('internal', 'the signer sent a malformed certificate');
  }
  return { certPem: o.certPem, chainPem: o.chainPem, notAfterMs: o.notAfterMs, rootId: o.rootId };
}
