// The control plane as the rest of the agent sees it: writes go to the Raft leader (forwarded when
// this agent is not the leader), reads are local and say the index they reflect, consistent reads
// go through ReadIndex. It also bootstraps the cluster (--bootstrap, --bootstrap-expect) and, on
// the leader, runs autopilot: it keeps `voters` voters, preferring distinct zones, by adding a
// healthy agent as a learner and promoting it once caught up, and removes voters gossip has marked
// failed for longer than deadVoterMs or that left.
import type { Logger } from 'pino';
import { MeshError, type RaftPeerView } from '../api/types.js';
import { Watchers } from '../api/watchers.js';
import { FailedSince, nextConfChange } from '../core/raft/autopilot.js';
import { bootstrapLog } from '../core/raft/bootstrap.js';
import { FETCH_BYTES_MAX, FETCH_ENTRIES_MAX } from '../core/raft/fanout.js';
import type { ConfChange, ConfState, RaftStatus } from '../core/raft/types.js';
import type { ApplyResult } from '../core/state/state-machine.js';
import type { MembershipService } from '../membership/service.js';
import type { RaftClient } from './client.js';
import { LEADER_CALL_DEADLINE_MS, LeaderCalls } from './leader-calls.js';
import type { RaftService } from './service.js';
import type { RaftStorage } from './storage.js';

export interface ControlPlaneInit {
  selfId: string;
  raft: RaftService;
  client: RaftClient;
  storage: RaftStorage;
  membership: MembershipService;
  log: Logger;
  bootstrap: boolean;
  bootstrapExpect: number;
  voters: number;
  /** A voter gossip has marked failed this long is replaced (Consul autopilot's dead-server cleanup). */
  deadVoterMs: number;
  /** Forwarded calls to the leader give up after this long. */
  forwardTimeoutMs: number;
  /** How long a write or consistent read is retried through leader failures (default LEADER_CALL_DEADLINE_MS; tests). */
  writeDeadlineMs?: number;
  /** Applied indexes reported by gossip (set once the agent has wired it). */
  applied?: import('./applied-gossip.js').AppliedGossip;
}

/** How long a read or a membership change waits for a leader to exist (elections take ~1 s). */
const LEADER_WAIT_MS = 3_000;
/** Agents asked whether a Raft cluster already exists before --bootstrap-expect bootstraps one. */
const BOOTSTRAP_PROBE_MAX = 8;

export class ControlPlane {
  private readonly watchers = new Watchers();
  private autopilotTimer: NodeJS.Timeout | undefined;
  private bootstrapTimer: NodeJS.Timeout | undefined;
  /** The first voters, when this process wrote the bootstrap (sorted). */
  private bootstrapVoters: string[] | undefined;
  private readonly failedSince = new FailedSince();
  private confChangeInFlight = false;
  private stopped = false;

  private readonly calls: LeaderCalls;

  constructor(private readonly init: ControlPlaneInit) {
    init.raft.onApply(() => {
      this.watchers.notify();
    });
    this.calls = new LeaderCalls({
      selfId: init.selfId,
      raft: init.raft,
      log: init.log,
      forward: (leader, req, timeoutMs) => this.forward(leader, req, timeoutMs),
      leaderOrWait: (deadline) => this.leaderOrWait(deadline),
      stopped: () => this.stopped,
      forwardTimeoutMs: init.forwardTimeoutMs,
      deadlineMs: init.writeDeadlineMs ?? LEADER_CALL_DEADLINE_MS,
    });
  }

  /**
   * Blocking query: resolves when `indexOf()` rises above `minIndex`, after `waitMs`, or when
   * `signal` aborts (the client went away), whichever comes first.
   */
  watch(indexOf: () => number, minIndex: number, waitMs: number, signal: AbortSignal): Promise<void> {
    return this.watchers.watch(indexOf, minIndex, waitMs, signal);
  }

  get raft(): RaftService {
    return this.init.raft;
  }

  /** Every agent's applied index as gossip last reported it, with its name. */
  appliedAll(): Array<{ id: string; name: string; applied: number; term: number; ageMs: number }> {
    const names = new Map(this.init.membership.members().map((m) => [m.id, m.name]));
    return (this.init.applied?.all() ?? []).map((v) => ({ ...v, name: names.get(v.id) ?? '' }));
  }

  async start(): Promise<void> {
    const loaded = await this.init.storage.load();
    const hasState =
      loaded.bootstrapped ||
      loaded.snapshot !== undefined ||
      loaded.restore.entries.length > 0 ||
      loaded.restore.hardState.term > 0;
    const empty: ConfState = { voters: [], learners: [] };
    if (!hasState && this.init.bootstrap) {
      await this.writeBootstrap([this.init.selfId]);
      await this.init.raft.start(empty);
      this.init.raft.campaign();
      this.init.log.info('bootstrapped a new raft cluster with this agent as the only voter');
    } else if (!hasState && this.init.bootstrapExpect > 0) {
      // Raft starts once the first voters are decided (it cannot change its initial conf later).
      this.waitForBootstrapPeers();
    } else {
      await this.init.raft.start(empty);
    }
    this.autopilotTimer = setInterval(() => void this.autopilot(), 1_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watchers.releaseAll();
    if (this.autopilotTimer) clearInterval(this.autopilotTimer);
    if (this.bootstrapTimer) clearInterval(this.bootstrapTimer);
  }

  /** Apply a command through Raft; see LeaderCalls.write (a write applies once, through failovers). */
  write(cmd: object): Promise<ApplyResult> {
    return this.calls.write(cmd);
  }

  /** Wait until this agent has applied everything committed before the call (linearizable read point). */
  consistent(): Promise<number> {
    return this.calls.consistent();
  }

  async transferLeader(to: string | undefined): Promise<string> {
    const st = this.init.raft.status();
    const target = to ?? st.conf.voters.find((v) => v !== this.init.raft.leader);
    if (!target) throw new MeshError('bad_request', 'no other voter to transfer leadership to');
    if (!st.conf.voters.includes(target)) throw new MeshError('bad_request', `${target} is not a voter`);
    const leader = await this.leaderOrWait();
    if (leader === this.init.selfId) this.init.raft.transferLeader(target);
    else await this.forward(leader, { op: 'transfer', to: target });
    // Report once the new leader is known (bounded).
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline && this.init.raft.leader !== target) await sleep(50);
    if (this.init.raft.leader !== target)
      throw new MeshError('unavailable', 'leadership did not move in time; retry');
    return target;
  }

  /** Serve requests forwarded by other agents (this agent should be the leader). */
  async handleForwarded(req: import('./client.js').ClientRequest): Promise<unknown> {
    switch (req.op) {
      case 'propose':
        return this.init.raft.proposeLocal(req.cmd);
      case 'read-index':
        return this.init.raft.readIndexLocal();
      case 'conf':
        return this.init.raft.proposeConfChangeLocal(req.cc);
      case 'transfer':
        this.init.raft.transferLeader(req.to);
        return true;
      case 'has-state': {
        if (!this.init.raft.started) return false;
        const st = this.init.raft.status();
        if (st.term === 0 && st.lastIndex === 0) return false;
        // Bootstrapped by this process: say with which voters, so an agent that chose the same
        // first voters writes the same log instead of waiting to be added (see existingCluster).
        return this.bootstrapVoters ? { voters: this.bootstrapVoters } : true;
      }
      case 'fetch': {
        // The answer becomes an append (or snapshot) from us at our term: only a leader may send
        // one, or a replica that knows another leader of that term would see two (cluster-sim).
        if (!this.init.raft.isLeader) {
          throw new MeshError('unavailable', 'not the leader; fetch from the leader of the latest batch');
        }
        const st = this.init.raft.status();
        const r = await this.init.storage.readCommitted(
          req.from,
          st.commit,
          FETCH_ENTRIES_MAX,
          FETCH_BYTES_MAX,
        );
        if (r) return { term: st.term, prevTerm: r.prevTerm, entries: r.entries, commit: st.commit };
        return { term: st.term, snapshot: await this.init.storage.readSnapshot() };
      }
    }
  }

  /** A voter leaving gracefully hands over leadership and removes itself first. */
  async leave(): Promise<void> {
    const st = this.init.raft.status();
    const isMember = st.conf.voters.includes(this.init.selfId) || st.conf.learners.includes(this.init.selfId);
    if (!isMember || st.conf.voters.length <= 1) return;
    try {
      if (this.init.raft.isLeader) {
        const other = st.conf.voters.find((v) => v !== this.init.selfId);
        if (other) await this.transferLeader(other).catch(() => undefined);
      }
      const leader = await this.leaderOrWait();
      const cc: ConfChange = { op: 'remove', node: this.init.selfId };
      if (leader === this.init.selfId) await this.init.raft.proposeConfChangeLocal(cc);
      else await this.forward(leader, { op: 'conf', cc });
      this.init.log.info('removed this agent from the raft configuration before leaving');
    } catch (err) {
      this.init.log.warn(
        { err: (err as Error).message },
        'could not remove this agent from raft before leaving',
      );
    }
  }

  peers(): RaftPeerView[] {
    const st = this.init.raft.status();
    const byId = new Map(this.init.membership.members().map((m) => [m.id, m]));
    const view = (id: string, voter: boolean): RaftPeerView => {
      const m = byId.get(id);
      return {
        id,
        name: m?.name ?? '',
        address: m?.address ?? '',
        role: id === st.leader ? 'leader' : voter ? 'voter' : 'learner',
        voter,
        matchIndex: st.progress[id]?.match ?? (id === this.init.selfId ? st.lastIndex : 0),
        appliedIndex: this.init.applied?.applied(id) ?? -1,
        status: m?.status ?? 'unknown',
      };
    };
    return [...st.conf.voters.map((id) => view(id, true)), ...st.conf.learners.map((id) => view(id, false))];
  }

  status(): RaftStatus & { leaderName: string; applied: number } {
    const st = this.init.raft.status();
    const leader = this.init.membership.members().find((m) => m.id === st.leader);
    return { ...st, leaderName: leader?.name ?? '', applied: this.init.raft.state.appliedIndex };
  }

  private async leaderOrWait(deadline = Date.now() + LEADER_WAIT_MS): Promise<string> {
    while (!this.init.raft.leader && Date.now() < deadline && !this.stopped) await sleep(25);
    const leader = this.init.raft.leader;
    if (!leader)
      throw new MeshError(
        'unavailable',
        'no raft leader: a quorum of voters is not reachable (see `mesh raft peers`)',
      );
    return leader;
  }

  private forward(
    leader: string,
    req: import('./client.js').ClientRequest,
    timeoutMs = this.init.forwardTimeoutMs,
  ): Promise<unknown> {
    const addr = this.init.membership.member(leader)?.address ?? '';
    return this.init.client.call(leader, addr, req, timeoutMs);
  }

  /**
   * --bootstrap-expect N: once N agents are alive (and stay so for a second), the N lowest ids
   * start as voters — unless some agent already holds Raft state: then a cluster exists (this agent
   * joined late, or came back with an empty data dir) and bootstrapping a second one would write a
   * different log under the same indexes. This agent then starts empty and waits to be added.
   */
  private waitForBootstrapPeers(): void {
    let lastKey = '';
    let stableSince = 0;
    let asking = false;
    this.bootstrapTimer = setInterval(() => {
      if (this.stopped || asking) return;
      const alive = this.init.membership.members().filter((m) => m.status === 'alive');
      if (alive.length < this.init.bootstrapExpect) return;
      const chosen = alive
        .map((m) => m.id)
        .sort()
        .slice(0, this.init.bootstrapExpect);
      const key = chosen.join(',');
      if (key !== lastKey) {
        lastKey = key;
        stableSince = Date.now();
        return;
      }
      if (Date.now() - stableSince < 1_000) return;
      asking = true;
      void this.existingCluster([...new Set([...chosen, ...alive.map((m) => m.id)])], chosen)
        .then((exists) => {
          if (exists === undefined || this.stopped) return;
          clearInterval(this.bootstrapTimer);
          if (exists || !chosen.includes(this.init.selfId)) {
            this.init.log.info(
              { voters: chosen.length, existing: exists },
              exists
                ? 'bootstrap: a raft cluster already exists; waiting to be added'
                : 'bootstrap: other agents are the first voters; waiting to be added',
            );
            return this.init.raft.start({ voters: [], learners: [] });
          }
          return this.bootstrapWith(chosen);
        })
        .finally(() => {
          asking = false;
        });
    }, 200);
  }

  /**
   * Ask up to BOOTSTRAP_PROBE_MAX other live agents whether they hold Raft state. True if one
   * does; false if all that were asked answered no; undefined if one did not answer (ask again).
   * A peer that bootstrapped a moment ago with the same first voters (`chosen`) does not count:
   * the agents of one --bootstrap-expect group decide within milliseconds of each other, and the
   * log this agent would write is the same one. Without this, the later ones of the group waited
   * to be added to a configuration that already named them, and the cluster could stall.
   */
  private async existingCluster(alive: string[], chosen: string[]): Promise<boolean | undefined> {
    const others = alive.filter((id) => id !== this.init.selfId).slice(0, BOOTSTRAP_PROBE_MAX);
    const same = (v: unknown): boolean => {
      const voters = (v as { voters?: unknown } | null)?.voters;
      return Array.isArray(voters) && voters.join(',') === [...chosen].sort().join(',');
    };
    const answers = await Promise.all(
      others.map((id) =>
        this.init.client
          .call(id, this.init.membership.member(id)?.address ?? '', { op: 'has-state' }, 2_000)
          .then(
            (v) => v === true || (typeof v === 'object' && v !== null && !same(v)),
            () => undefined,
          ),
      ),
    );
    if (answers.includes(true)) return true;
    return answers.includes(undefined) ? undefined : false;
  }

  /** The initial configuration goes into the log, so agents added later derive the same one. */
  private async writeBootstrap(voters: string[]): Promise<void> {
    this.bootstrapVoters = [...voters].sort();
    await this.init.storage.markBootstrapped({ voters, learners: [] });
    await this.init.storage.persist({ ...bootstrapLog(voters), messages: [], committed: [], readStates: [] });
  }

  private async bootstrapWith(voters: string[]): Promise<void> {
    await this.writeBootstrap(voters);
    await this.init.raft.start({ voters: [], learners: [] });
    this.init.log.info({ voters: voters.length }, 'bootstrapped raft with the expected agents as voters');
  }

  /** Leader only: keep the voter count at its target with healthy, caught-up agents. */
  private async autopilot(): Promise<void> {
    if (this.stopped || !this.init.raft.isLeader || this.confChangeInFlight) return;
    const st = this.init.raft.status();
    const members = new Map(this.init.membership.members().map((m) => [m.id, m]));
    const now = Date.now();
    this.failedSince.observe(st, members, now);
    const change = nextConfChange(st, members, this.failedSince, now, {
      self: this.init.selfId,
      voters: this.init.voters,
      deadVoterMs: this.init.deadVoterMs,
    });
    if (!change) return;
    this.confChangeInFlight = true;
    try {
      this.init.log.info(
        { op: change.op, node: members.get(change.node)?.name ?? change.node },
        'autopilot: changing voters',
      );
      await this.init.raft.proposeConfChangeLocal(change);
    } catch (err) {
      this.init.log.debug({ err: (err as Error).message }, 'autopilot change not applied');
    } finally {
      this.confChangeInFlight = false;
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
