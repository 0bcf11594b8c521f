// The services registered on this agent and their health checks. Two sources, as in Consul:
// files in --config-dir (read at start and on `mesh reload` / SIGHUP) and the HTTP API (kept in
// the data dir so they survive a restart). Every change is validated first; a bad definition is
// refused with the field and the reason and leaves what is registered untouched.
import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import { readConfigFile } from '../config/file.js';
import { clashes, parseService, parseServiceFile, UpstreamPorts } from '../core/catalog/definition.js';
import type {
  CheckState,
  CheckStatus,
  Instance,
  InstanceFields,
  ServiceDefinition,
} from '../core/catalog/types.js';
import { WIRE_LIMITS } from '../core/catalog/wire.js';
import { formatValidationError } from '../core/state/index.js';
import type { ValidationError } from '../core/state/types.js';
import { CheckRunner } from '../health/runner.js';
import { KEYS, type Store } from '../store/store.js';

export interface LocalServicesInit {
  store: Store;
  log: Logger;
  /** Directory of service definition files; undefined = none. */
  configDir: string | undefined;
  enableScriptChecks: boolean;
  /** Called (coalesced) whenever the instances or their check states change. */
  onChange: (instances: Instance[]) => void;
}

export type ServiceSource = 'file' | 'api';

export interface LocalService {
  definition: ServiceDefinition;
  source: ServiceSource;
  /** The file that defines it (source 'file'). */
  file?: string;
}

export interface ReloadResult {
  services: number;
  files: number;
}

/** Files read from --config-dir; more is a wrong directory, not a real configuration. */
const CONFIG_DIR_FILES_MAX = 1024;
const SERVICE_FILE_EXTENSIONS = new Set(['.json', '.yaml', '.yml']);

function problemsMessage(prefix: string, problems: readonly ValidationError[]): string {
  const shown = problems.slice(0, 10).map(formatValidationError).join('; ');
  const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : '';
  return `${prefix}${shown}${more}`;
}

/** The part of a definition every agent sees (upstreams and check definitions stay local). */
function instanceFields(d: ServiceDefinition): InstanceFields {
  return {
    id: d.id,
    name: d.name,
    address: d.address,
    port: d.port,
    tags: d.tags,
    meta: d.meta,
    protocol: d.protocol,
    ...(d.weights !== undefined ? { weights: d.weights } : {}),
  };
}

export class LocalServices {
  private fileServices: LocalService[] = [];
  private readonly apiServices = new Map<string, LocalService>();
  /** Stored registrations not loaded at start (unreadable here, or clashing): deregister still removes them. */
  private readonly unloaded = new Set<string>();
  private readonly runner: CheckRunner;
  private notifyScheduled = false;
  private readonly lastStatus = new Map<string, CheckStatus>();
  private instanceCache = new Map<
    string,
    { def: ServiceDefinition; checksKey: string; instance: Instance }
  >();
  private stopped = false;
  /** Serialises registrations, deregistrations and reloads: each sees the previous one's result. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly init: LocalServicesInit) {
    this.runner = new CheckRunner({
      log: init.log.child({ module: 'checks' }),
      enableScriptChecks: init.enableScriptChecks,
      onChange: (state) => this.onCheckChange(state),
    });
  }

  /** Load persisted API registrations and the config dir. A bad file fails the start, naming it. */
  async start(): Promise<void> {
    for (const [key, value] of await this.init.store.range(
      KEYS.servicesPrefix,
      `${KEYS.servicesPrefix}\xff`,
    )) {
      const id = key.slice(KEYS.servicesPrefix.length);
      let def: ServiceDefinition | ValidationError[];
      try {
        def = parseService(JSON.parse(new TextDecoder().decode(value)));
      } catch (err) {
        def = [{ field: '', message: (err as Error).message }];
      }
      if (Array.isArray(def)) {
        this.unloaded.add(id);
        // Kept on disk, not deleted: a newer version's definition must not be lost by an older agent.
        this.init.log.warn(
          { id, reason: problemsMessage('', def) },
          'stored service registration not loaded',
        );
        continue;
      }
      this.apiServices.set(def.id, { definition: def, source: 'api' });
    }
    if (this.init.configDir !== undefined) this.fileServices = await this.readConfigDir(this.init.configDir);
    this.dropPortClashes();
    this.checkCombined(this.fileServices, this.apiServices);
    this.apply();
    this.init.log.info(
      { fromFiles: this.fileServices.length, fromApi: this.apiServices.size },
      'local services loaded',
    );
  }

  stop(): void {
    this.stopped = true;
    this.runner.stop();
  }

  list(): LocalService[] {
    return [...this.fileServices, ...this.apiServices.values()].sort((a, b) =>
      a.definition.id < b.definition.id ? -1 : 1,
    );
  }

  checks(): CheckState[] {
    return this.runner.states();
  }

  /** Register (or replace) a service from an API body. */
  register(body: unknown): Promise<ServiceDefinition> {
    return this.serial(async () => {
      const def = parseService(body);
      if (Array.isArray(def))
        throw new MeshError('bad_request', problemsMessage('invalid service definition: ', def));
      const fromFile = this.fileServices.find((s) => s.definition.id === def.id);
      if (fromFile) {
        throw new MeshError(
          'conflict',
          `service id "${def.id}" is defined in ${fromFile.file}; edit that file and run \`mesh reload\``,
        );
      }
      const next = new Map(this.apiServices);
      next.set(def.id, { definition: def, source: 'api' });
      this.checkCombined(this.fileServices, next);
      await this.init.store.put(`${KEYS.servicesPrefix}${def.id}`, JSON.stringify(body));
      this.apiServices.set(def.id, { definition: def, source: 'api' });
      this.unloaded.delete(def.id);
      this.apply();
      this.init.log.info({ id: def.id, name: def.name, port: def.port }, 'service registered');
      return def;
    });
  }

  deregister(id: string): Promise<void> {
    return this.serial(async () => {
      const fromFile = this.fileServices.find((s) => s.definition.id === id);
      if (fromFile) {
        throw new MeshError(
          'conflict',
          `service id "${id}" is defined in ${fromFile.file}; remove it from that file and run \`mesh reload\``,
        );
      }
      if (!this.apiServices.has(id) && !this.unloaded.has(id))
        throw new MeshError('not_found', `no service with id "${id}" on this agent`);
      await this.init.store.batch([{ type: 'del', key: `${KEYS.servicesPrefix}${id}` }]);
      this.apiServices.delete(id);
      this.unloaded.delete(id);
      this.apply();
      this.init.log.info({ id }, 'service deregistered');
    });
  }

  /** Re-read --config-dir. On any error nothing changes and the error names the file and field. */
  reload(): Promise<ReloadResult> {
    return this.serial(async () => {
      const dir = this.init.configDir;
      if (dir === undefined) return { services: 0, files: 0 };
      const next = await this.readConfigDir(dir);
      this.checkCombined(next, this.apiServices);
      this.fileServices = next;
      this.apply();
      const files = new Set(next.map((s) => s.file)).size;
      this.init.log.info({ services: next.length, files }, 'config dir reloaded');
      return { services: next.length, files };
    });
  }

  /** A TTL check's report (`mesh check pass|warn|fail`); MeshError not_found / bad_request. */
  report(checkId: string, status: CheckStatus, note: string): CheckState {
    return this.runner.report(checkId, status, note);
  }

  /**
   * The instances as they are gossiped: definitions with their checks' current states. An
   * unchanged instance is the same object as last time, so the catalog skips comparing it.
   */
  instances(): Instance[] {
    const states = new Map(this.runner.states().map((s) => [s.id, s]));
    const next = new Map<string, { def: ServiceDefinition; checksKey: string; instance: Instance }>();
    const out = this.list().map(({ definition: d }) => {
      const checks = d.checks.map(
        (c) =>
          states.get(c.id) ?? {
            id: c.id,
            name: c.name,
            type: c.spec.type,
            status: c.initialStatus,
            output: '',
          },
      );
      const checksKey = checks.map((c) => `${c.id}\0${c.status}\0${c.output}`).join('\0');
      const cached = this.instanceCache.get(d.id);
      const instance =
        cached && cached.def === d && cached.checksKey === checksKey
          ? cached.instance
          : { ...instanceFields(d), checks };
      next.set(d.id, { def: d, checksKey, instance });
      return instance;
    });
    this.instanceCache = next;
    return out;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Stored registrations whose upstream port another service already uses (registered before such
   * clashes were refused) are not loaded, so the agent still starts; kept on disk, as above.
   */
  private dropPortClashes(): void {
    const ports = new UpstreamPorts();
    for (const s of this.fileServices) ports.claim(s.definition);
    for (const [id, s] of [...this.apiServices]) {
      const problems = ports.claim(s.definition);
      if (problems.length === 0) continue;
      this.apiServices.delete(id);
      this.unloaded.add(id);
      this.init.log.warn(
        { id, reason: problemsMessage('', problems) },
        'stored service registration not loaded',
      );
    }
  }

  /** Ids and upstream ports unique across both sources, the instance bound, and script checks only when enabled. */
  private checkCombined(files: readonly LocalService[], api: ReadonlyMap<string, LocalService>): void {
    const all = [...files, ...api.values()];
    const problems = clashes(all.map((s) => s.definition));
    if (problems.length > 0) throw new MeshError('conflict', problemsMessage('', problems));
    if (all.length > WIRE_LIMITS.instancesPerNodeMax) {
      throw new MeshError('bad_request', `at most ${WIRE_LIMITS.instancesPerNodeMax} services per agent`);
    }
    if (!this.init.enableScriptChecks) {
      for (const s of all) {
        const script = s.definition.checks.find((c) => c.spec.type === 'script');
        if (script) {
          const where = s.file ? `${s.file}: ` : '';
          throw new MeshError(
            'bad_request',
            `${where}service "${s.definition.id}" check "${script.id}": script checks are disabled; ` +
              'start the agent with --enable-script-checks to allow them',
          );
        }
      }
    }
  }

  private async readConfigDir(dir: string): Promise<LocalService[]> {
    let names: string[];
    try {
      names = (await readdir(dir))
        .filter((n) => SERVICE_FILE_EXTENSIONS.has(extname(n).toLowerCase()))
        .sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new MeshError(
        'bad_request',
        `--config-dir ${dir}: ${code === 'ENOENT' ? 'no such directory' : code}`,
      );
    }
    if (names.length > CONFIG_DIR_FILES_MAX) {
      throw new MeshError('bad_request', `--config-dir ${dir}: more than ${CONFIG_DIR_FILES_MAX} files`);
    }
    const out: LocalService[] = [];
    for (const name of names) {
      const file = join(dir, name);
      const defs = parseServiceFile(await readConfigFile(file));
      if (defs.length > 0 && 'field' in (defs[0] as object)) {
        throw new MeshError('bad_request', problemsMessage(`${file}: `, defs as ValidationError[]));
      }
      for (const d of defs as ServiceDefinition[]) out.push({ definition: d, source: 'file', file });
    }
    const problems = clashes(out.map((s) => s.definition));
    if (problems.length > 0)
      throw new MeshError('bad_request', problemsMessage(`--config-dir ${dir}: `, problems));
    return out;
  }

  /** Hand the checks to the runner and the instances to the catalog. */
  private apply(): void {
    const checks = this.list().flatMap((s) => s.definition.checks);
    const ids = new Set(checks.map((c) => c.id));
    for (const id of this.lastStatus.keys()) if (!ids.has(id)) this.lastStatus.delete(id);
    this.runner.set(checks);
    this.scheduleNotify();
  }

  private onCheckChange(state: CheckState): void {
    // A status change is news for the operator; a new output with the same status is not.
    if (this.lastStatus.get(state.id) !== state.status) {
      this.lastStatus.set(state.id, state.status);
      this.init.log.info(
        { check: state.id, status: state.status, output: state.output.slice(0, 200) },
        'check status changed',
      );
    }
    this.scheduleNotify();
  }

  /** Several check changes in one turn of the event loop become one catalog update. */
  private scheduleNotify(): void {
    if (this.notifyScheduled || this.stopped) return;
    this.notifyScheduled = true;
    queueMicrotask(() => {
      this.notifyScheduled = false;
      if (!this.stopped) this.init.onChange(this.instances());
    });
  }
}
