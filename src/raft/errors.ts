// How a refused Raft proposal reads to a user: an API error code and a message to act on.
import { MeshError } from '../api/types.js';
import type { ProposeError } from '../core/raft/types.js';

export function proposeError(e: ProposeError): MeshError {
  switch (e.code) {
    case 'not-leader':
      return new MeshError(
        'unavailable',
        e.leader ? `not the leader (leader is ${e.leader})` : 'no raft leader at the moment; retry',
      );
    case 'transferring':
      return new MeshError('unavailable', 'leadership is being transferred; retry');
    case 'overloaded':
      return new MeshError('unavailable', 'too many uncommitted writes; retry');
    case 'conf-change-pending':
      return new MeshError('unavailable', 'another membership change is in progress; retry');
    case 'invalid':
      return new MeshError('bad_request', e.message);
  }
}
