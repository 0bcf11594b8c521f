// `mesh raft`: the Raft group that orders configuration writes: its peers, this agent's view of
// it, and handing leadership to another voter (before maintenance on the leader's host).
import type { Command } from 'commander';
import type { ApiClient } from '../api/client.js';
import type { RaftPeerView, RaftStatusView } from '../api/types.js';
import { clientCommand, clientFor, type Io } from './context.js';
import { formatKeyValues, formatTable } from './table.js';

export function formatPeers(peers: readonly RaftPeerView[]): string {
  const sorted = [...peers].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
  );
  return formatTable(
    ['NAME', 'ID', 'ADDRESS', 'ROLE', 'VOTER', 'MATCH-INDEX', 'APPLIED-INDEX', 'STATUS'],
    sorted.map((p) => [
      p.name === '' ? '-' : p.name,
      p.id,
      p.address === '' ? '-' : p.address,
      p.role,
      String(p.voter),
      String(p.matchIndex),
      p.appliedIndex < 0 ? '-' : String(p.appliedIndex),
      p.status,
    ]),
  );
}

function leaderText(s: RaftStatusView): string {
  if (!s.leader) return 'none (no leader known: an election is running or there is no quorum)';
  return s.leaderName ? `${s.leaderName} (${s.leader})` : s.leader;
}

export function formatRaftStatus(s: RaftStatusView): string {
  return formatKeyValues([
    ['id', s.id],
    ['role', s.role],
    ['term', String(s.term)],
    ['leader', leaderText(s)],
    ['commit', String(s.commit)],
    ['applied', String(s.applied)],
    ['first index', String(s.firstIndex)],
    ['last index', String(s.lastIndex)],
    ['voters', s.conf.voters],
    ['learners', s.conf.learners],
  ]);
}

export async function raftPeersCommand(client: ApiClient, opts: { json?: boolean }): Promise<string> {
  const peers = await client.raftPeers();
  return opts.json ? JSON.stringify(peers, null, 2) : formatPeers(peers);
}

export async function raftStatusCommand(client: ApiClient, opts: { json?: boolean }): Promise<string> {
  const status = await client.raftStatus();
  return opts.json ? JSON.stringify(status, null, 2) : formatRaftStatus(status);
}

export async function transferLeaderCommand(client: ApiClient, opts: { to?: string }): Promise<string> {
  const { leader } = await client.raftTransferLeader(opts.to);
  return `Leadership transferred to ${leader}`;
}

export function registerRaftCommands(program: Command, io: Io): void {
  const raft = program.command('raft').description('inspect the Raft group that orders configuration writes');

  clientCommand(raft, 'peers', 'list the members of the Raft configuration, with their roles and progress')
    .option('--json', 'print the JSON array from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      io.out(await raftPeersCommand(clientFor(opts), opts));
    });

  clientCommand(raft, 'status', "show this agent's Raft state: role, term, leader, indexes, configuration")
    .option('--json', 'print the JSON object from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      io.out(await raftStatusCommand(clientFor(opts), opts));
    });

  clientCommand(raft, 'transfer-leader', 'make another voter the leader (default: the most up-to-date one)')
    .option('--to <peer>', 'name or id of the voter to hand leadership to')
    .action(async (opts: { http: string; to?: string }) => {
      io.out(await transferLeaderCommand(clientFor(opts), opts));
    });
}
