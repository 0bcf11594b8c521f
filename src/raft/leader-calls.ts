// Calls that must reach the Raft leader, through a leader failure: writes and consistent-read
// points. Each is asked of the leader (this agent, or another over the client protocol) and asked
// again, of whoever leads then, when the leader refuses for now, does not answer, or stops being
// the leader while the call waits; up to a deadline. Writes carry a request id so that asking
// again cannot apply one twice (src/core/state/requests.ts); reads are safe to repeat anyway.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import type { ApplyResult } from '../core/state/state-machine.js';
import type { ClientRequest } from './client.js';
import type { RaftService } from './service.js';

/**
 * A write is proposed again (same request id, so it applies once) until this long after it began:
 * long enough to outlast a leader's death (an election is ~1 s; a replica forgets a silent leader
 * after 3 s), short enough that the CLI, which waits 10 s, hears why it failed. Consul holds an
 * RPC 7 s for a leader (RPCHoldTimeout).
 */
export const LEADER_CALL_DEADLINE_MS = 8_000;
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

export interface LeaderCallsInit {
  selfId: string;
  raft: RaftService;
  log: Logger;
  /** A call to another agent over the client protocol. */
  forward: (leader: string, req: ClientRequest, timeoutMs: number) => Promise<unknown>;
  /** The leader's id once there is one; throws `unavailable` past `deadline`. */
  leaderOrWait: (deadline: number) => Promise<string>;
  stopped: () => boolean;
  /** How long one call to a leader waits for its answer. */
  forwardTimeoutMs: number;
  /** How long a write or read is asked again through leader failures (LEADER_CALL_DEADLINE_MS). */
  deadlineMs: number;
}

export class LeaderCalls {
  constructor(private readonly init: LeaderCallsInit) {}

  /**
   * Apply a command through Raft; resolves with the state machine's result once the leader has
   * committed it and this agent has applied it (bounded: APPLIED_HERE_WAIT_MS).
   *
   * The command gets a request id. When the leader fails with the write in flight (it dies, loses
   * its term, or does not answer), whether the write was committed is unknown: it is proposed
   * again, with the same id, to the next leader; a copy of a write committed already applies as
   * nothing and answers the first one's result (src/core/state/requests.ts). So a write survives
   * a leader failover and still applies once. Retried until `deadlineMs`; errors other than
   * `unavailable` (a refused command) are final at once.
   */
  async write(cmd: object): Promise<ApplyResult> {
    const proposal = { ...cmd, rid: randomUUID() };
    const deadlineMs = this.init.deadlineMs;
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
            : (this.init.forward(
                leader,
                { op: 'propose', cmd: proposal },
                timeoutMs,
              ) as Promise<ApplyResult>),
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
   * repeat), until `deadlineMs`.
   */
  async consistent(): Promise<number> {
    const deadlineMs = this.init.deadlineMs;
    const { value: index } = await this.untilLeaderAnswers(
      Date.now() + deadlineMs,
      (leader, timeoutMs) =>
        leader === this.init.selfId
          ? this.init.raft.readIndexLocal()
          : (this.init.forward(leader, { op: 'read-index' }, timeoutMs) as Promise<number>),
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
      const leader = await this.init.leaderOrWait(deadline);
      const until = Math.min(deadline, Date.now() + this.init.forwardTimeoutMs);
      const answered = this.attempt(leader, ask(leader, Math.max(1, until - Date.now())), until);
      const outcome = await (settled
        ? Promise.race([answered, settled.then((value) => ({ value, here: true }))])
        : answered);
      if ('value' in outcome) return { value: outcome.value, here: 'here' in outcome, attempts };
      if (this.init.stopped()) throw new MeshError('unavailable', 'the agent is stopping');
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
}
