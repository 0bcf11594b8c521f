// `mesh info`: this agent's identity, addresses and counters.
import type { ApiClient } from '../api/client.js';
import type { AgentSelfView } from '../api/types.js';
import { formatKeyValues } from './table.js';

function counts(r: Record<string, number>): string {
  const parts = Object.entries(r).map(([k, v]) => `${k}=${v}`);
  return parts.length > 0 ? parts.join(' ') : '-';
}

export function formatInfo(s: AgentSelfView): string {
  return formatKeyValues([
    ['name', s.name],
    ['id', s.id],
    ['status', s.status],
    ['address', s.address],
    ['multiaddrs', s.multiaddrs],
    ['http', s.http],
    ['dns', s.dns],
    ['zone', s.zone === '' ? '-' : s.zone],
    ['incarnation', String(s.incarnation)],
    ['local health', String(s.localHealth)],
    ['members', counts(s.members)],
    ['version', s.version],
    ['data dir', s.dataDir],
    ['started at', s.startedAt],
    [
      'stats',
      Object.entries(s.stats)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => `${k}=${v}`),
    ],
  ]);
}

export async function infoCommand(client: ApiClient, opts: { json?: boolean }): Promise<string> {
  const self = await client.self();
  return opts.json ? JSON.stringify(self, null, 2) : formatInfo(self);
}
