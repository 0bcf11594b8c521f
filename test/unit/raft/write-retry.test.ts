// A write through ControlPlane survives a leader failure: it is proposed again, under the same
// request id, to the next leader (and a consistent read asks the next leader too); it is confirmed as soon as this agent applies it; a refused
// command is final; and it gives up at its deadline with a message that says the write may
// still be applied. The Raft service and the client protocol are fakes driven by the test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { MeshError } from '../../../src/api/types.js';
import type { ApplyResult } from '../../../src/core/state/types.js';
import { ControlPlane, type ControlPlaneInit } from '../../../src/raft/control-plane.js';

type Call = { to: string; cmd: { rid: string } };

class FakeRaft {
  leader = 'A';
  applied = 0;
  private readonly requests = new Map<string, (r: ApplyResult) => void>();
  onApply(): void {}
  onRequestApplied(rid: string, fn: (r: ApplyResult) => void): () => void {
    this.requests.set(rid, fn);
    return () => this.requests.delete(rid);
  }
  /** This agent applies the entry carrying `rid`. */
  apply(rid: string, result: ApplyResult): void {
    this.applied = Math.max(this.applied, result.index);
    this.requests.get(rid)?.(result);
  }
  waitApplied(index: number, _timeoutMs?: number): Promise<boolean> {
    return Promise.resolve(this.applied >= index);
  }
  proposeLocal(): Promise<ApplyResult> {
    return Promise.reject(new Error('this agent is not the leader in these tests'));
  }
}

function plane(raft: FakeRaft, answer: (c: Call) => Promise<unknown>, writeDeadlineMs = 8_000) {
  const calls: Call[] = [];
  const init = {
    selfId: 'self',
    raft,
    client: {
      call: (to: string, _addr: string, req: { cmd: { rid: string } }) => {
        const c = { to, cmd: req.cmd };
        calls.push(c);
        return answer(c);
      },
    },
    membership: { member: () => ({ address: '' }), members: () => [] },
    log: pino({ level: 'silent' }),
    forwardTimeoutMs: 5_000,
    writeDeadlineMs,
  } as unknown as ControlPlaneInit;
  return { cp: new ControlPlane(init), calls };
}

const put = { op: 'kv-set', key: 'k', value: new Uint8Array([1]), cas: 0 };
const ok = (index: number): ApplyResult => ({ ok: true, index, op: 'kv-set', changed: 1 });
const never = (): Promise<unknown> => new Promise(() => undefined);

/** Leader A dies with the call in flight (never answers); B is elected 100 ms later and answers. */
function diesThenB(raft: FakeRaft, answerB: (c: Call) => Promise<unknown>): (c: Call) => Promise<unknown> {
  return (c) => {
    if (c.to !== 'A') return answerB(c);
    setTimeout(() => {
      raft.leader = 'B';
    }, 100);
    return never();
  };
}

describe('ControlPlane.write through a leader failure', () => {
  it('proposes the write again, under the same id, to the next leader', async () => {
    const raft = new FakeRaft();
    const { cp, calls } = plane(
      raft,
      diesThenB(raft, (c) => {
        raft.apply(c.cmd.rid, ok(7));
        return Promise.resolve(ok(7));
      }),
    );
    assert.deepEqual(await cp.write(put), ok(7));
    assert.deepEqual(
      calls.map((c) => c.to),
      ['A', 'B'],
    );
    assert.equal(calls[0]?.cmd.rid, calls[1]?.cmd.rid, 'one request id for both copies');
    assert.match(calls[0]?.cmd.rid ?? '', /^[A-Za-z0-9._:-]{1,64}$/);
    assert.equal(
      (calls[0]?.cmd as unknown as { key?: string } | undefined)?.key,
      'k',
      'the command itself is sent',
    );
  });

  it('is confirmed when this agent applies it, although the leader never answered', async () => {
    const raft = new FakeRaft();
    const { cp, calls } = plane(raft, (c) => {
      // The old leader committed it and died before answering: it reaches this agent anyway.
      setTimeout(() => raft.apply(c.cmd.rid, ok(3)), 50);
      return never();
    });
    assert.deepEqual(await cp.write(put), ok(3));
    assert.equal(calls.length, 1, 'not proposed again');
  });

  it('proposes again after a refusal from a leader that is stepping down', async () => {
    const raft = new FakeRaft();
    let n = 0;
    const { cp, calls } = plane(raft, () =>
      ++n === 1
        ? Promise.reject(new MeshError('unavailable', 'leadership changed before the write committed; retry'))
        : Promise.resolve(ok(9)),
    );
    raft.applied = 9;
    assert.deepEqual(await cp.write(put), ok(9));
    assert.equal(calls.length, 2);
  });

  it('a refused command is final at once', async () => {
    const raft = new FakeRaft();
    const { cp, calls } = plane(raft, () =>
      Promise.reject(new MeshError('bad_request', 'spec.x: unknown field')),
    );
    await assert.rejects(cp.write(put), /spec.x: unknown field/);
    assert.equal(calls.length, 1);
  });

  it('gives up at its deadline, saying the write may still be applied', async () => {
    const raft = new FakeRaft();
    const { cp } = plane(raft, never, 300);
    await assert.rejects(cp.write(put), (err: MeshError) => {
      assert.equal(err.code, 'unavailable');
      assert.match(
        err.message,
        /write not confirmed within 0.3 s \(no answer from the leader\); it may still be applied/,
      );
      return true;
    });
  });

  it('asks for a consistent read point again when the leader dies', async () => {
    const raft = new FakeRaft();
    raft.applied = 12;
    const { cp, calls } = plane(
      raft,
      diesThenB(raft, () => Promise.resolve(12)),
    );
    assert.equal(await cp.consistent(), 12);
    assert.deepEqual(
      calls.map((c) => c.to),
      ['A', 'B'],
    );
  });

  it('waits for a leader when there is none, up to its deadline', async () => {
    const raft = new FakeRaft();
    raft.leader = '';
    const { cp } = plane(raft, () => Promise.resolve(ok(1)), 2_000);
    setTimeout(() => {
      raft.leader = 'C';
      raft.applied = 1;
    }, 200);
    assert.deepEqual(await cp.write(put), ok(1));
  });
});
