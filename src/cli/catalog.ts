// `mesh catalog`: every agent's services as this agent knows them (the catalog spreads by gossip).
import type { Command } from 'commander';
import type { CatalogServiceView, InstanceView, NodeView } from '../api/types.js';
import { clientCommand, clientFor, type Io } from './context.js';
import { formatTable } from './table.js';

export function formatCatalogServices(list: readonly CatalogServiceView[]): string {
  return formatTable(
    ['NAME', 'PROTOCOL', 'INSTANCES', 'PASSING', 'WARNING', 'CRITICAL', 'TAGS'],
    list.map((s) => [
      s.name,
      s.protocol,
      String(s.instances),
      String(s.passing),
      String(s.warning),
      String(s.critical),
      s.tags.length > 0 ? s.tags.join(',') : '-',
    ]),
  );
}

export function formatInstances(list: readonly InstanceView[]): string {
  // Weights get a column (passing/warning) only when some instance has other than the default 1/1.
  const weighted = list.some(
    (i) => i.weights !== undefined && (i.weights.passing !== 1 || i.weights.warning !== 1),
  );
  return formatTable(
    ['NODE', 'ID', 'ADDRESS', 'PORT', 'HEALTH', ...(weighted ? ['WEIGHTS'] : []), 'TAGS', 'CHECKS'],
    list.map((i) => [
      i.node,
      i.id,
      i.address,
      String(i.port),
      i.health,
      ...(weighted ? [`${i.weights?.passing ?? 1}/${i.weights?.warning ?? 1}`] : []),
      i.tags.length > 0 ? i.tags.join(',') : '-',
      i.checks
        .filter((c) => c.status !== 'passing')
        .map((c) => `${c.id}=${c.status}`)
        .join(',') || 'all passing',
    ]),
  );
}

export function formatNodes(list: readonly NodeView[]): string {
  return formatTable(
    ['NAME', 'ADDRESS', 'STATUS', 'SERVICES', 'PASSING', 'WARNING', 'CRITICAL'],
    list.map((n) => [
      n.name,
      n.address,
      n.status,
      String(n.services),
      String(n.passing),
      String(n.warning),
      String(n.critical),
    ]),
  );
}

export function registerCatalogCommands(program: Command, io: Io): void {
  const catalog = program.command('catalog').description("every agent's services, as this agent knows them");

  clientCommand(catalog, 'services', 'list the services in the cluster with their instance counts by health')
    .option('--json', 'print the JSON array from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      const list = await clientFor(opts).catalogServices();
      io.out(opts.json ? JSON.stringify(list, null, 2) : formatCatalogServices(list));
    });

  clientCommand(catalog, 'instances', 'list the instances of a service, on every agent')
    .argument('<name>', 'service name')
    .option('--healthy', 'only instances that pass (or warn): those that take traffic')
    .option('--tag <tag>', 'only instances with this tag')
    .option('--json', 'print the JSON array from the API')
    .action(async (name: string, opts: { http: string; healthy?: boolean; tag?: string; json?: boolean }) => {
      const list = await clientFor(opts).catalogInstances(name, opts);
      io.out(opts.json ? JSON.stringify(list, null, 2) : formatInstances(list));
    });

  clientCommand(catalog, 'nodes', 'list the agents with how many services each hosts and their health')
    .option('--json', 'print the JSON array from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      const list = await clientFor(opts).catalogNodes();
      io.out(opts.json ? JSON.stringify(list, null, 2) : formatNodes(list));
    });
}
