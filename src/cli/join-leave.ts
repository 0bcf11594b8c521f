// `mesh join` and `mesh leave`.
import type { ApiClient } from '../api/client.js';
import type { JoinResult } from '../api/types.js';

export function formatJoin(addresses: readonly string[], r: JoinResult): string {
  const lines = [`Joined the cluster through ${r.joined} of ${addresses.length} address(es).`];
  for (const e of r.errors) lines.push(`  ${e.address}: ${e.message}`);
  return lines.join('\n');
}

export async function joinCommand(client: ApiClient, addresses: string[]): Promise<string> {
  return formatJoin(addresses, await client.join(addresses));
}

export async function leaveCommand(client: ApiClient): Promise<string> {
  await client.leave();
  return `The agent at ${client.baseUrl} is leaving the cluster and will exit.`;
}
