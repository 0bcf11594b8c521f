// `mesh ca`, `mesh intention` and `mesh proxy`: the data plane's identity, authorization and state.
import { type Command, Option } from 'commander';
import type { ApiClient } from '../api/client.js';
import { clientCommand, clientFor, ExitCode, type Io, parseServiceName } from './context.js';
import { formatKeyValues, formatTable } from './table.js';

interface RootsView {
  trustDomain: string;
  activeRootId: string;
  roots: Array<{
    id: string;
    active: boolean;
    notAfter: string;
    crossSigned: boolean;
    rotatedOutAt: string | null;
    certPem: string;
  }>;
}

interface IntentionView {
  source: string;
  destination: string;
  /** allow, deny, or permissions (an L7 intention). */
  action: string;
  permissions?: unknown[];
  description: string;
  precedence: number;
}

interface ProxyStatusView {
  inbound: string;
  certs: string[];
  upstreams: Array<{
    source: string;
    destination: string;
    address: string;
    protocol: string;
    error: string;
    /** Absent when none apply, and from agents that predate circuit breakers. */
    limits?: { maxConnections?: number; maxPendingRequests?: number; maxConcurrentRequests?: number };
  }>;
  snapshotsApplied: number;
  handshakeFailures: number;
  version: { raft: number; catalog: number };
  /** Absent from agents that predate passive health checks. */
  ejected?: Array<{ service: string; instance: string; remainingMs: number }>;
  /** Absent from agents that predate the proxy watchdog. */
  restarts?: { exited: number; unresponsive: number };
}

/** The answer to `PUT` and `DELETE /v1/intentions/exact`; `change` is absent from older agents. */
interface IntentionEditView {
  index: number;
  change?: 'created' | 'updated' | 'unchanged' | 'deleted';
  /** The action of the rule that was there before. */
  was?: string;
}

const pair = (source: string, destination: string) => new URLSearchParams({ source, destination });

/** What `mesh intention allow|deny` did, from the agent's answer: a new rule is not a replaced one. */
export function intentionPutText(
  r: IntentionEditView,
  source: string,
  destination: string,
  action: string,
): string {
  const rule = `${source} => ${destination}`;
  switch (r.change) {
    case 'created':
      return `Created: ${rule} (${action})`;
    case 'updated':
      return r.was !== undefined && r.was !== action
        ? `Updated: ${rule} (${action}, was ${r.was})`
        : `Updated: ${rule} (${action}, description changed)`;
    case 'unchanged':
      return `Unchanged: ${rule} (${action}) is in place already`;
    default:
      return `Written: ${rule} (${action})`;
  }
}

/**
 * An upstream's circuit breakers in a few words, those that apply to its protocol (`tcp`: only
 * connections; `http2` and `grpc`: only requests): `connections 10, pending 5, requests 20`, or `-`.
 */
export function limitsText(u: ProxyStatusView['upstreams'][number]): string {
  const l = u.limits;
  if (l === undefined) return '-';
  const h2 = u.protocol === 'http2' || u.protocol === 'grpc';
  const parts: string[] = [];
  if (l.maxConnections !== undefined && !h2) parts.push(`connections ${l.maxConnections}`);
  if (l.maxPendingRequests !== undefined && u.protocol === 'http')
    parts.push(`pending ${l.maxPendingRequests}`);
  if (l.maxConcurrentRequests !== undefined && u.protocol !== 'tcp')
    parts.push(`requests ${l.maxConcurrentRequests}`);
  return parts.length > 0 ? parts.join(', ') : '-';
}

export async function caRootsCommand(
  client: ApiClient,
  opts: { json?: boolean; pem?: boolean },
): Promise<string> {
  const r = (await client.request('GET', '/v1/ca/roots')) as RootsView;
  if (opts.json) return JSON.stringify(r, null, 2);
  if (opts.pem) return r.roots.map((x) => x.certPem.trimEnd()).join('\n');
  if (r.roots.length === 0)
    return 'No CA yet: the Raft leader creates it shortly after the cluster first has one.';
  return [
    `trust domain: ${r.trustDomain}`,
    formatTable(
      ['ID', 'ACTIVE', 'NOT-AFTER', 'CROSS-SIGNED', 'REPLACED'],
      r.roots.map((x) => [
        x.id.slice(0, 16),
        String(x.active),
        x.notAfter,
        String(x.crossSigned),
        x.rotatedOutAt ?? '-',
      ]),
    ),
  ].join('\n');
}

export async function intentionListCommand(client: ApiClient, opts: { json?: boolean }): Promise<string> {
  const rows = (await client.request('GET', '/v1/intentions')) as IntentionView[];
  if (opts.json) return JSON.stringify(rows, null, 2);
  if (rows.length === 0) return 'No intentions: the default decides (see `mesh config get mesh global`).';
  return formatTable(
    ['SOURCE', 'DESTINATION', 'ACTION', 'PRECEDENCE', 'DESCRIPTION'],
    rows.map((r) => [
      r.source,
      r.destination,
      r.action === 'permissions' ? `L7: ${r.permissions?.length ?? 0} permissions` : r.action,
      String(r.precedence),
      r.description || '-',
    ]),
  );
}

export function registerMeshCommands(program: Command, io: Io): void {
  const ca = program.command('ca').description('the cluster certificate authority that identifies services');
  clientCommand(
    ca,
    'roots',
    'show the trusted CA roots (the active one and those it replaced whose leaves may be in use)',
  )
    .option('--json', 'print the JSON object from the API')
    // Two output formats at once cannot both be honoured: refuse, rather than print one silently.
    .addOption(new Option('--pem', 'print the root certificates as PEM').conflicts('json'))
    .action(async (opts: { http: string; json?: boolean; pem?: boolean }) => {
      io.out(await caRootsCommand(clientFor(opts), opts));
    });
  clientCommand(
    ca,
    'rotate',
    'create a new root, cross-signed by the current one; leaves re-issue under it',
  ).action(async (opts: { http: string }) => {
    const r = (await clientFor(opts).send('POST', '/v1/ca/rotate', new URLSearchParams(), {}, 30_000)) as {
      activeRootId: string;
    };
    io.out(
      `Rotated: the active root is now ${r.activeRootId.slice(0, 16)}; agents renew their certificates now.`,
    );
  });

  const intention = program
    .command('intention')
    .description('allow or deny calls between services (enforced by the destination agent)');
  const ruleEnd = (name: string) =>
    [name, 'a service name, or "*" for every service', parseServiceName(true)] as const;
  for (const action of ['allow', 'deny'] as const) {
    clientCommand(intention, action, `${action} calls from SOURCE to DESTINATION ("*" matches every service)`)
      .argument(...ruleEnd('<source>'))
      .argument(...ruleEnd('<destination>'))
      .option('--description <text>', 'why the rule exists, shown by `mesh intention list`')
      .action(async (source: string, destination: string, opts: { http: string; description?: string }) => {
        const r = (await clientFor(opts).send('PUT', '/v1/intentions/exact', pair(source, destination), {
          action,
          ...(opts.description ? { description: opts.description } : {}),
        })) as IntentionEditView;
        io.out(intentionPutText(r, source, destination, action));
      });
  }
  clientCommand(intention, 'delete', 'remove the rule for SOURCE to DESTINATION')
    .argument(...ruleEnd('<source>'))
    .argument(...ruleEnd('<destination>'))
    .action(async (source: string, destination: string, opts: { http: string }) => {
      const r = (await clientFor(opts).send(
        'DELETE',
        '/v1/intentions/exact',
        pair(source, destination),
        {},
      )) as IntentionEditView;
      io.out(
        r.change === 'unchanged'
          ? `Nothing to delete: there is no intention ${source} => ${destination}`
          : `Deleted: ${source} => ${destination}`,
      );
    });
  clientCommand(intention, 'list', 'list every rule, most specific first')
    .option('--json', 'print the JSON array from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      io.out(await intentionListCommand(clientFor(opts), opts));
    });
  clientCommand(intention, 'check', 'would a call from SOURCE to DESTINATION be allowed? (exit 0 yes, 1 no)')
    .argument('<source>', 'the calling service', parseServiceName(false))
    .argument('<destination>', 'the called service', parseServiceName(false))
    .action(async (source: string, destination: string, opts: { http: string }) => {
      const r = (await clientFor(opts).request('GET', '/v1/intentions/check', pair(source, destination))) as {
        allowed: boolean;
        reason: string;
      };
      io.out(`${r.allowed ? 'Allowed' : 'Denied'} (${r.reason})`);
      // Scripts branch on the exit code: 0 allowed, 1 denied.
      if (!r.allowed) throw new ExitCode(1);
    });

  const proxy = program.command('proxy').description("this agent's data-plane proxy");
  clientCommand(proxy, 'status', 'listeners, certificates and the configuration version the proxy runs on')
    .option('--json', 'print the JSON object from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      const s = (await clientFor(opts).request('GET', '/v1/agent/proxy')) as ProxyStatusView;
      if (opts.json) return io.out(JSON.stringify(s, null, 2));
      io.out(
        formatKeyValues([
          ['inbound', s.inbound],
          ['certificates', s.certs.length > 0 ? s.certs : ['none yet']],
          ['raft index', String(s.version.raft)],
          ['catalog index', String(s.version.catalog)],
          ['snapshots applied', String(s.snapshotsApplied)],
          ['inbound handshake failures', String(s.handshakeFailures)],
          ...(s.restarts
            ? [
                [
                  'worker restarts',
                  `${s.restarts.exited + s.restarts.unresponsive} (exited ${s.restarts.exited}, unresponsive ${s.restarts.unresponsive})`,
                ] as [string, string],
              ]
            : []),
        ]),
      );
      if (s.upstreams.length > 0) {
        // The LIMITS column only when some upstream has circuit breakers.
        const limited = s.upstreams.some((u) => u.limits !== undefined);
        io.out(
          formatTable(
            ['SOURCE', 'DESTINATION', 'LISTEN', 'PROTOCOL', ...(limited ? ['LIMITS'] : []), 'ERROR'],
            s.upstreams.map((u) => [
              u.source,
              u.destination,
              u.address,
              u.protocol,
              ...(limited ? [limitsText(u)] : []),
              u.error || '-',
            ]),
          ),
        );
      }
      const ejected = s.ejected ?? [];
      if (ejected.length > 0) {
        io.out('');
        io.out(
          formatTable(
            ['EJECTED SERVICE', 'INSTANCE', 'RETURNS IN'],
            ejected.map((e) => [e.service, e.instance, `${Math.ceil(e.remainingMs / 1000)}s`]),
          ),
        );
      }
    });
}
