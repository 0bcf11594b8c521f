// The control plane as the rest of the agent sees it: writes go to the Raft leader (forwarded when
// this agent is not the leader), reads are local and say the index they reflect, consistent reads
// go through ReadIndex. It also bootstraps the cluster (--bootstrap, --bootstrap-expect) and, on
// the leader, runs autopilot: it keeps `voters` voters, preferring distinct zones, by adding a
// healthy agent as a learner and promoting it once caught up, and removes voters gossip has marked
// failed for longer than deadVoterMs or that left.
import { randomUUID } from 'node:crypto';
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
  /** How long a write is retried through leader failures (default WRITE_DEADLINE_MS; tests). */
  writeDeadlineMs?: number;
  /** Applied indexes reported by gossip (set once the agent has wired it). */
  applied?: import('./applied-gossip.js').AppliedGossip;
}

/** How long a read or a membership change waits for a leader to exist (elections take ~1 s). */
const LEADER_WAIT_MS = 3_000;
/**
 * A write is proposed again (same request id, so it applies once) until this long after it began:
 * long enough to outlast a leader's death (an election is ~1 s; a replica forgets a silent leader
 * after 3 s), short enough that the CLI, which waits 10 s, hears why it failed. Consul holds an
 * RPC 7 s for a leader (RPCHoldTimeout).
 */
export const WRITE_DEADLINE_MS = 8_000;
/** Waits before proposing again to the same leader after it refused (overloaded, say): doubling. */
const RETRY_WAIT_MIN_MS = 50;
const RETRY_WAIT_MAX_MS = 1_000;
/** How often a write in flight looks whether the leader it went to is still the leader. */
const LEADER_CHECK_MS = 25;
/**
 * A write the leader confirmed waits this long at most for this agent to apply it too, so a read
 * from this agent right after the write sees it (it usually takes a few ms, one batch on a replica).
 */
const APPLIED_HERE_WAIT_MS = 1_000;
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

  constructor(private readonly init: ControlPlaneInit) {
    init.raft.onApply(() => {
      this.watchers.notify();
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

  /**
   * Apply a command through Raft; resolves with the state machine's result once the leader has
   * committed it and this agent has applied it (bounded: APPLIED_HERE_WAIT_MS).
   *
   * The command gets a request id. When the leader fails with the write in flight (it dies, loses
   * its term, or does not answer), whether the write was committed is unknown: it is proposed
   * again, with the same id, to the next leader; a copy of a write committed already applies as
   * nothing and answers the first one's result (src/core/state/requests.ts). So a write survives
   * a leader failover and still applies once. Retried until WRITE_DEADLINE_MS; errors other than
   * `unavailable` (a refused command) are final at once.
   */
  async write(cmd: object): Promise<ApplyResult> {
    const proposal = { ...cmd, rid: randomUUID() };
    const deadlineMs = this.init.writeDeadlineMs ?? WRITE_DEADLINE_MS;
    const deadline = Date.now() + deadlineMs;
    let wake: (r: ApplyResult) => void = () => undefined;
    const appliedHere = new Promise<ApplyResult>((resolve) => {
      wake = resolve;
    });
    const cancel = this.init.raft.onRequestApplied(proposal.rid, (r) => wake(r));
    if (!cancel) throw new MeshError('unavailable', 'too many writes in flight; retry');
    try {
      const answer = await this.untilLeaderAnswers(
        deadline,
        (leader, timeoutMs) =>
          leader === this.init.selfId
            ? this.init.raft.proposeLocal(proposal)
            : (this.forward(leader, { op: 'propose', cmd: proposal }, timeoutMs) as Promise<ApplyResult>),
        (problem) =>
          `write not confirmed within ${deadlineMs / 1000} s (${problem}); it may still be applied: read it back before writing again`,
        appliedHere,
      );
      const result = answer.value;
      if (!answer.here) {
        await this.init.raft.waitApplied(result.index, Math.min(APPLIED_HERE_WAIT_MS, deadline - Date.now()));
      }
      if (answer.attempts > 1) {
        this.init.log.info(
          { attempts: answer.attempts, index: result.index },
          'write confirmed after a retry',
        );
      }
      return result;
    } finally {
      cancel();
    }
  }

  /**
   * Wait until this agent has applied everything committed before the call (linearizable read
   * point). Asked of the leader again through a leader failure, as writes are (a read is safe to
   * repeat), until WRITE_DEADLINE_MS.
   */
  async consistent(): Promise<number> {
    const deadlineMs = this.init.writeDeadlineMs ?? WRITE_DEADLINE_MS;
    const { value: index } = await this.untilLeaderAnswers(
      Date.now() + deadlineMs,
      (leader, timeoutMs) =>
        leader === this.init.selfId
          ? this.init.raft.readIndexLocal()
          : (this.forward(leader, { op: 'read-index' }, timeoutMs) as Promise<number>),
      (problem) => `consistent read not confirmed by a leader within ${deadlineMs / 1000} s (${problem})`,
    );
    if (!(await this.init.raft.waitApplied(index, this.init.forwardTimeoutMs))) {
      throw new MeshError('unavailable', `this agent did not catch up to index ${index} in time`);
    }
    return index;
  }

  /**
   * Ask the leader with `ask` (on this agent, or over the client protocol), and again, to whoever
   * leads then, after each `unavailable` answer, each forwardTimeoutMs without one, and each change
   * of leader while waiting, until `deadline`; then fail with `giveUp(the last problem)`. Any other
   * error is final at once. `settled`, if it resolves first, is the answer (`here`).
   */
  private async untilLeaderAnswers<T>(
    deadline: number,
    ask: (leader: string, timeoutMs: number) => Promise<T>,
    giveUp: (problem: string) => string,
    settled?: Promise<T>,
  ): Promise<{ value: T; here: boolean; attempts: number }> {
    let waitMs = RETRY_WAIT_MIN_MS;
    for (let attempts = 1; ; attempts++) {
      const leader = await this.leaderOrWait(deadline);
      const until = Math.min(deadline, Date.now() + this.init.forwardTimeoutMs);
      const answered = this.attempt(leader, ask(leader, Math.max(1, until - Date.now())), until);
      const outcome = await (settled
        ? Promise.race([answered, settled.then((value) => ({ value, here: true }))])
        : answered);
      if ('value' in outcome) return { value: outcome.value, here: 'here' in outcome, attempts };
      if (this.stopped) throw new MeshError('unavailable', 'the agent is stopping');
      if (Date.now() >= deadline) throw new MeshError('unavailable', giveUp(outcome.problem));
      this.init.log.debug(
        { attempts, leader, problem: outcome.problem },
        'leader did not answer; asking again',
      );
      if (this.init.raft.leader === leader) {
        // The same leader refused or did not answer: give it a moment.
        await sleep(Math.min(waitMs, Math.max(0, deadline - Date.now())));
        waitMs = Math.min(waitMs * 2, RETRY_WAIT_MAX_MS);
      }
    }
  }

  /**
   * One call to `leader`: its answer, or the problem that makes it worth asking again (an
   * `unavailable` refusal, no answer by `until`, or `leader` no longer the leader). Other errors
   * are thrown.
   */
  private async attempt<T>(
    leader: string,
    call: Promise<T>,
    until: number,
  ): Promise<{ value: T } | { problem: string }> {
    let done = false;
    const answered = call.then(
      (value) => ({ value }),
      (err: unknown) => {
        if (err instanceof MeshError && err.code === 'unavailable') return { problem: err.message };
        throw err;
      },
    );
    const watched = (async () => {
      while (!done) {
        await sleep(LEADER_CHECK_MS);
        if (this.init.raft.leader !== leader)
          return { problem: `leader ${leader.slice(-8)} is no longer the leader` };
        if (Date.now() >= until) return { problem: 'no answer from the leader' };
      }
      return { problem: '' };
    })();
    try {
      return await Promise.race([answered, watched]);
    } finally {
      done = true;
      // A call given up on may still fail later: nobody waits for it any more.
      answered.catch(() => undefined);
    }
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
