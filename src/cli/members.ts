// `mesh members`: the cluster as this agent sees it.
import type { ApiClient } from '../api/client.js';
import type { MemberView } from '../api/types.js';
import { formatTable } from './table.js';

export function formatMembers(members: readonly MemberView[]): string {
  const sorted = [...members].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1,
  );
  return formatTable(
    ['NAME', 'ADDRESS', 'STATUS', 'ZONE'],
    sorted.map((m) => [m.name, m.address, m.status, m.zone === '' ? '-' : m.zone]),
  );
}

export async function membersCommand(
  client: ApiClient,
  opts: { json?: boolean; status?: string },
): Promise<string> {
  const members = await client.members(opts.status === undefined ? {} : { status: opts.status });
  return opts.json ? JSON.stringify(members, null, 2) : formatMembers(members);
}
