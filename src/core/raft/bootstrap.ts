// The first configuration of a new cluster, written into the log. Every node derives its
// configuration from the snapshot's plus the conf entries in its log (conf.ts). If the initial
// voters existed only in the bootstrapping node's memory (as `initialConf`), an agent added later
// would derive a configuration without them: it would count a different quorum than the
// bootstrap voters, and reject the later removal of a bootstrap voter as invalid. So, as etcd
// does, a bootstrapping node starts with the initial configuration as committed conf entries at
// term 1; agents that join later receive them like any other entries. Every initial voter of a
// `--bootstrap-expect` cluster writes the same entries (voters sorted), so the logs match.
import type { Entry, HardState, NodeId } from './types.js';

export function bootstrapLog(voters: readonly NodeId[]): { hardState: HardState; entries: Entry[] } {
  if (voters.length === 0) throw new Error('raft: bootstrap needs at least one voter');
  const sorted = [...voters].sort();
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new Error(`raft: bootstrap voter ${sorted[i]} listed twice`);
  }
  const entries: Entry[] = [];
  for (const node of sorted) {
    if (node === '') throw new Error('raft: bootstrap voter id is empty');
    // Added as a learner, then promoted: the same two steps autopilot takes for a later voter.
    for (const op of ['add-learner', 'promote'] as const) {
      entries.push({
        term: 1,
        index: entries.length + 1,
        type: 'conf',
        data: new Uint8Array(0),
        conf: { op, node },
      });
    }
  }
  return { hardState: { term: 1, vote: '', commit: entries.length }, entries };
}
