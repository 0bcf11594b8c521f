// An instance's health as every agent computes it: the worst of its checks, and critical whatever
// its checks say when gossip reports its agent failed (or left, or unknown) — as Consul's
// serfHealth check does. Pure.
import { type CheckStatus, type Instance, worstStatus } from './types.js';

/** Membership's view of the hosting agent ('alive' | 'suspect' | 'failed' | 'left'), or undefined. */
export type AgentStatus = string | undefined;

/** The node check every instance carries implicitly, named as in `mesh catalog instances`. */
export const AGENT_CHECK_ID = 'mesh-agent';

export function agentCheckStatus(agent: AgentStatus): CheckStatus {
  // A suspect agent may be slow rather than dead; it keeps its traffic until it is declared failed.
  return agent === 'alive' || agent === 'suspect' ? 'passing' : 'critical';
}

export function instanceHealth(instance: Instance, agent: AgentStatus): CheckStatus {
  let health = agentCheckStatus(agent);
  for (const c of instance.checks) health = worstStatus(health, c.status);
  return health;
}

/** Healthy for routing and DNS: passing or warning (Consul's DNS also serves warning instances). */
export function isHealthy(status: CheckStatus): boolean {
  return status !== 'critical';
}

/**
 * An instance's share of calls at `health` (Consul's weights): its passing weight, its warning
 * weight (0 takes it out of the proxies' rotation), none when critical. Default 1 and 1.
 */
export function instanceWeight(instance: Pick<Instance, 'weights'>, health: CheckStatus): number {
  if (health === 'critical') return 0;
  return health === 'passing' ? (instance.weights?.passing ?? 1) : (instance.weights?.warning ?? 1);
}
