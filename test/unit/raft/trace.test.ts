// Golden trace (etcd-io/raft style): a scenario driven step by step, every delivered message and
// state change printed, compared to the expected text. When behaviour changes, the diff of this
// trace is the review.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimRaft } from '../../helpers/sim-raft.js';

const EXPECTED = `
t0 a is pre-candidate term 0 leader -
t0 a→b pre-vote term=1 last=0@0
t0 a→c pre-vote term=1 last=0@0
t0 b→a pre-vote-resp term=1
t0 a is candidate term 1 leader -
t0 c→a pre-vote-resp term=1
t0 a→b vote term=1 last=0@0
t0 a→c vote term=1 last=0@0
t0 b→a vote-resp term=1
t0 a is leader term 1 leader a
t0 c→a vote-resp term=1
t0 a→b append term=1 prev=0@0 commit=0 entries=[1@1:noop]
t0 b is follower term 1 leader a
t0 a→c append term=1 prev=0@0 commit=0 entries=[1@1:noop]
t0 c is follower term 1 leader a
t0 b→a append-resp term=1 index=1
t0 a applies 1@1:noop
t0 c→a append-resp term=1 index=1
t0 a→b append term=1 prev=1@1 commit=1 entries=[]
t0 b applies 1@1:noop
t0 a→c append term=1 prev=1@1 commit=1 entries=[]
t0 c applies 1@1:noop
t0 b→a append-resp term=1 index=1
t0 c→a append-resp term=1 index=1
t0 a→b append term=1 prev=1@1 commit=1 entries=[2@1]
t0 a→c append term=1 prev=1@1 commit=1 entries=[2@1]
t0 b→a append-resp term=1 index=2
t0 a applies 2@1:normal
t0 c→a append-resp term=1 index=2
t0 a→b append term=1 prev=2@1 commit=2 entries=[]
t0 b applies 2@1:normal
t0 a→c append term=1 prev=2@1 commit=2 entries=[]
t0 c applies 2@1:normal
t0 b→a append-resp term=1 index=2
t0 c→a append-resp term=1 index=2
t0 a→b heartbeat term=1 commit=2 ctx=q1
t0 a→c heartbeat term=1 commit=2 ctx=q1
t0 b→a heartbeat-resp term=1 ctx=q1
t0 a read q1 at 2
t0 c→a heartbeat-resp term=1 ctx=q1
t2 a→b heartbeat term=1 commit=2
t2 a→c heartbeat term=1 commit=2
t2 b→a heartbeat-resp term=1
t2 c→a heartbeat-resp term=1
t2 a→b timeout-now term=1
t2 b is candidate term 2 leader -
t2 b→a vote term=2 last=2@1 transfer
t2 a is follower term 2 leader -
t2 b→c vote term=2 last=2@1 transfer
t2 c is follower term 2 leader -
t2 a→b vote-resp term=2
t2 b is leader term 2 leader b
t2 c→b vote-resp term=2
t2 b→a append term=2 prev=2@1 commit=2 entries=[3@2:noop]
t2 a is follower term 2 leader b
t2 b→c append term=2 prev=2@1 commit=2 entries=[3@2:noop]
t2 c is follower term 2 leader b
t2 a→b append-resp term=2 index=3
t2 b applies 3@2:noop
t2 c→b append-resp term=2 index=3
t2 b→a append term=2 prev=3@2 commit=3 entries=[]
t2 a applies 3@2:noop
t2 b→c append term=2 prev=3@2 commit=3 entries=[]
t2 c applies 3@2:noop
t2 a→b append-resp term=2 index=3
t2 c→b append-resp term=2 index=3
`;

describe('raft golden trace', () => {
  it('election with pre-vote, a proposal, a read, a leader transfer', () => {
    const sim = new SimRaft({ voters: ['a', 'b', 'c'], seed: 1, trace: true });
    sim.with('a', (r) => r.campaign());
    sim.propose('a', 'x');
    sim.with('a', (r) => r.readIndex('q1'));
    sim.tick(2);
    sim.with('a', (r) => r.transferLeader('b'));
    assert.equal(sim.trace.join('\n'), EXPECTED.trim());
  });
});
