// `mesh services`, `mesh check`, `mesh reload`: the services registered on this agent, their TTL
// checks, and re-reading --config-dir.
import type { Command } from 'commander';
import type { ApiClient } from '../api/client.js';
import type { LocalServiceView } from '../api/types.js';
import { MeshError } from '../api/types.js';
import { parseDocument } from './config.js';
import {
  clientCommand,
  clientFor,
  type Io,
  processStdin,
  type ReadStdin,
  readSmallFile,
  sourceName,
} from './context.js';
import { formatTable } from './table.js';

/** A definition file is a few KiB; 1 MiB is the agent's request body limit. */
const serviceFileBytesMax = 1024 * 1024;

/** The service objects of a file: `{service: {...}}`, `{services: [...]}` or one bare service. */
export function servicesInFile(source: string, doc: Record<string, unknown>): unknown[] {
  const keys = Object.keys(doc);
  if (keys.length === 1 && keys[0] === 'service') return [doc.service];
  if (keys.length === 1 && keys[0] === 'services') {
    if (!Array.isArray(doc.services))
      throw new MeshError('bad_request', `${sourceName(source)}: services: must be a list`);
    return doc.services;
  }
  return [doc];
}

export async function registerCommand(client: ApiClient, source: string, bytes: Uint8Array): Promise<string> {
  const defs = servicesInFile(source, parseDocument(source, bytes, 'a service definition'));
  const done: string[] = [];
  for (const [i, def] of defs.entries()) {
    try {
      const r = await client.serviceRegister(def);
      done.push(`Registered service ${r.name} (id ${r.id})`);
    } catch (err) {
      if (!(err instanceof MeshError)) throw err;
      const where = defs.length > 1 ? `${sourceName(source)} services[${i}]` : sourceName(source);
      const before = done.length > 0 ? ` (${done.length} registered before it)` : '';
      throw new MeshError(err.code, `${where}: ${err.message}${before}`);
    }
  }
  return done.join('\n');
}

function checksSummary(s: LocalServiceView): string {
  if (s.checks.length === 0) return '-';
  return s.checks.map((c) => `${c.id}=${c.status}`).join(',');
}

export function formatLocalServices(list: readonly LocalServiceView[]): string {
  return formatTable(
    ['ID', 'NAME', 'ADDRESS', 'PORT', 'PROTOCOL', 'TAGS', 'HEALTH', 'CHECKS', 'SOURCE'],
    list.map((s) => [
      s.id,
      s.name,
      s.address === '' ? '(agent)' : s.address,
      String(s.port),
      s.protocol,
      s.tags.length > 0 ? s.tags.join(',') : '-',
      s.health,
      checksSummary(s),
      s.source === 'file' ? `file ${s.file ?? ''}` : 'api',
    ]),
  );
}

export function registerServiceCommands(program: Command, io: Io, readStdin: ReadStdin = processStdin): void {
  const services = program.command('services').description('the services registered on this agent');

  clientCommand(
    services,
    'register',
    'register the service(s) defined in a JSON or YAML file ("-": standard input)',
  )
    .argument('<file>', 'definition file: a service object, {"service": {...}} or {"services": [...]}')
    .action(async (file: string, opts: { http: string }) => {
      const bytes =
        file === '-' ? await readStdin(serviceFileBytesMax) : await readSmallFile(file, serviceFileBytesMax);
      io.out(await registerCommand(clientFor(opts), file, bytes));
    });

  clientCommand(services, 'deregister', 'remove a service registered through the API or `services register`')
    .argument('<id>', 'service id (see mesh services list)')
    .action(async (id: string, opts: { http: string }) => {
      await clientFor(opts).serviceDeregister(id);
      io.out(`Deregistered service ${id}`);
    });

  clientCommand(services, 'list', 'list the services registered on this agent with their health')
    .option('--json', 'print the JSON array from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      const list = await clientFor(opts).agentServices();
      io.out(opts.json ? JSON.stringify(list, null, 2) : formatLocalServices(list));
    });

  const check = program.command('check').description("report a TTL check's status (from the service itself)");
  for (const [verb, what] of [
    ['pass', 'passing'],
    ['warn', 'warning'],
    ['fail', 'critical'],
  ] as const) {
    clientCommand(check, verb, `mark a TTL check ${what}; it must be reported again within its TTL`)
      .argument('<check-id>', 'check id (see mesh services list)')
      .option('--note <text>', 'shown as the check output')
      .action(async (id: string, opts: { http: string; note?: string }) => {
        const c = await clientFor(opts).checkUpdate(verb, id, opts.note);
        io.out(`Check ${c.id} is ${c.status}`);
      });
  }

  clientCommand(program, 'reload', "re-read the agent's --config-dir (as SIGHUP does)").action(
    async (opts: { http: string }) => {
      const r = await clientFor(opts).reload();
      io.out(`Reloaded: ${r.services} service(s) from ${r.files} file(s)`);
    },
  );
}
