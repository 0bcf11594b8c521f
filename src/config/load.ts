// loadAgentConfig: CLI flags over a config file over defaults, validated into an AgentConfig.
// Every rejection is a MeshError('bad_request') whose message names the flag or the file and key.
import { mkdtemp } from 'node:fs/promises';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { AgentConfig, HostPort } from '../agent/agent-config.js';
import { MeshError } from '../api/types.js';
import { defaults } from './defaults.js';
import { formatDurationMs } from './duration.js';
import { readConfigFile } from './file.js';
import { formatHostPort } from './host-port.js';
import { type OptionSpec, options, type Settings, suggestKey } from './options.js';

export { parseDurationMs } from './duration.js';
export { parseHostPort } from './host-port.js';

/** The host facts the defaults depend on; tests replace them. */
export interface ConfigSystem {
  hostname(): string;
  /** Non-internal IPv4 addresses of this host, in interface order. */
  externalIPv4(): string[];
  makeTempDir(): Promise<string>;
}

export const realSystem: ConfigSystem = {
  hostname,
  externalIPv4() {
    const out: string[] = [];
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
    }
    return out;
  },
  makeTempDir: () => mkdtemp(join(tmpdir(), 'mesh-dev-')),
};

const byFlag = new Map<string, OptionSpec>(options.map((o) => [o.flag, o]));
const byKey = new Map<string, OptionSpec>(options.map((o) => [o.key, o]));
/** Flags that steer loading itself rather than set an option. */
const loaderFlags = new Set(['config']);

type Partial_ = Partial<Record<keyof Settings, unknown>>;

/**
 * Where a setting was given, for messages about it: a flag (`--bind`), or a key in a config file
 * (`config file /etc/mesh.yaml` + `"bind"`). A check across two settings names both this way, so
 * its message points at the line to change like the check of a single field does.
 */
interface Place {
  /** `config file PATH` for a file; absent for a flag or the environment. */
  file?: string;
  /** `--bind`, `"bind"` or `MESH_CLUSTER_KEY`. */
  name: string;
}
type Places = Map<keyof Settings, Place>;

function placeText(p: Place): string {
  return p.file === undefined ? p.name : `${p.file}: ${p.name}`;
}

function fromFlags(flags: Record<string, unknown>, places: Places): Partial_ {
  const out: Partial_ = {};
  for (const [name, value] of Object.entries(flags)) {
    if (value === undefined || loaderFlags.has(name)) continue;
    const spec = byFlag.get(name) ?? byKey.get(name);
    if (!spec) throw new MeshError('bad_request', `unknown option --${name}`);
    const place = { name: `--${spec.key}` };
    out[spec.prop] = spec.parse(value, placeText(place), { kind: 'flag' });
    places.set(spec.prop, place);
  }
  return out;
}

function fromFile(path: string, data: Record<string, unknown>, places: Places): Partial_ {
  const out: Partial_ = {};
  const source = { kind: 'file' as const, dir: dirname(path) };
  const file = `config file ${path}`;
  for (const [key, value] of Object.entries(data)) {
    const spec = byKey.get(key);
    if (!spec) {
      const hint = suggestKey(key);
      throw new MeshError(
        'bad_request',
        `${file}: unknown key ${JSON.stringify(key)}` +
          (hint ? ` (did you mean "${hint}"?)` : ` (known keys: ${options.map((o) => o.key).join(', ')})`),
      );
    }
    const place = { file, name: JSON.stringify(key) };
    out[spec.prop] = spec.parse(value, placeText(place), source);
    places.set(spec.prop, place);
  }
  return out;
}

/**
 * Another setting, as named in a message about `here`: bare when it sits in the same file (or is
 * a flag beside a flag), with its file when not, and marked as the default when nobody set it.
 */
function otherSetting(places: Places, prop: keyof Settings, key: string, value: string, here: Place): string {
  const there = places.get(prop);
  if (there === undefined) return `${key} (${value}, the default)`;
  const elsewhere = there.file !== undefined && there.file !== here.file ? `, in ${there.file}` : '';
  return `${there.name} (${value}${elsewhere})`;
}

/** Two settings that conflict, named together: `config file F: "a" and "b"`, or each with its place. */
function bothSettings(a: Place, b: Place): string {
  if (a.file === b.file) return placeText({ file: a.file, name: `${a.name} and ${b.name}` });
  const one = (p: Place) => (p.file === undefined ? p.name : `${p.name} (in ${p.file})`);
  return `${one(a)} and ${one(b)}`;
}

function isUnspecified(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

function defaultAdvertise(bind: HostPort, bindPlace: Place | undefined, sys: ConfigSystem): HostPort {
  if (!isUnspecified(bind.host)) return bind;
  const ip = sys.externalIPv4()[0];
  if (ip === undefined) {
    const what =
      bindPlace === undefined
        ? `--bind is ${formatHostPort(bind)} by default (every interface)`
        : `${placeText(bindPlace)}: ${formatHostPort(bind)} is every interface`;
    const set = bindPlace?.file === undefined ? '--advertise' : `"advertise" in ${bindPlace.file}`;
    throw new MeshError(
      'bad_request',
      `${what}, and this host has no non-loopback IPv4 address to advertise; ` +
        `set ${set} to the address other agents should dial`,
    );
  }
  return { host: ip, port: bind.port };
}

export async function loadAgentConfig(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  sys: ConfigSystem = realSystem,
): Promise<AgentConfig> {
  const configPath = flags.config;
  if (configPath !== undefined && (typeof configPath !== 'string' || configPath === '')) {
    throw new MeshError('bad_request', '--config: expected a file path');
  }
  if (configPath === '-') {
    // Other commands read `-` from standard input; the agent does not (under a service manager its
    // standard input is /dev/null, and relative paths in the file need the file's directory).
    // Say so, rather than look for a file named "-".
    throw new MeshError(
      'bad_request',
      "--config: the agent does not read its config from standard input; give the file's path",
    );
  }
  const places: Places = new Map();
  // One spelling of the path in every message about the file: absolute, since an agent's working
  // directory (a service manager's) is seldom the operator's.
  const filePath = configPath === undefined ? undefined : resolve(configPath);
  const file = filePath === undefined ? {} : fromFile(filePath, await readConfigFile(filePath), places);
  const flagValues = fromFlags(flags, places);
  // The environment variable sits at the level of the flag (it exists so the key stays out of `ps`),
  // above the file; an explicit --cluster-key still wins.
  const envKey = env.MESH_CLUSTER_KEY;
  if (flagValues.clusterKey === undefined && envKey !== undefined && envKey !== '') {
    const spec = byKey.get('cluster-key')!;
    flagValues.clusterKey = spec.parse(envKey, 'MESH_CLUSTER_KEY', { kind: 'flag' });
    places.set('clusterKey', { name: 'MESH_CLUSTER_KEY' });
  }
  const s = { ...file, ...flagValues } as Partial<Settings>;

  const dev = s.dev ?? false;
  const bind = s.bind ?? (dev ? defaults.devBind : defaults.bind);
  const retryJoinIntervalMs = s.retryJoinIntervalMs ?? defaults.retryJoinIntervalMs;
  const retryJoinMaxIntervalMs = s.retryJoinMaxIntervalMs ?? defaults.retryJoinMaxIntervalMs;
  if (retryJoinMaxIntervalMs < retryJoinIntervalMs) {
    // Blame the setting the operator gave; when both were given, the maximum.
    const maxPlace = places.get('retryJoinMaxIntervalMs');
    const intervalText = formatDurationMs(retryJoinIntervalMs);
    const maxText = formatDurationMs(retryJoinMaxIntervalMs);
    throw new MeshError(
      'bad_request',
      maxPlace !== undefined
        ? `${placeText(maxPlace)}: must not be less than ` +
            `${otherSetting(places, 'retryJoinIntervalMs', 'retry-join-interval', intervalText, maxPlace)}, got ${maxText}`
        : `${placeText(places.get('retryJoinIntervalMs')!)}: must not be more than retry-join-max-interval ` +
            `(${maxText}, the default), got ${intervalText}`,
    );
  }
  const bootstrapPlace = places.get('bootstrap');
  const bootstrapExpectPlace = places.get('bootstrapExpect');
  if (s.bootstrap === true && bootstrapPlace !== undefined && bootstrapExpectPlace !== undefined) {
    throw new MeshError(
      'bad_request',
      `${bothSettings(bootstrapPlace, bootstrapExpectPlace)}: give one or the other, not both`,
    );
  }
  const nodeName = s.nodeName ?? sys.hostname();
  if (s.nodeName === undefined) {
    // The host name is not checked by the option parser; check it the same way.
    byKey.get('node-name')!.parse(nodeName, `the host name (default --node-name)`, { kind: 'flag' });
  }
  const advertise = s.advertise ?? defaultAdvertise(bind, places.get('bind'), sys);

  // Last, because it has a side effect: no temporary directory is left behind by a bad config.
  let dataDir = s.dataDir;
  let dataDirIsTemporary = false;
  if (dataDir === undefined) {
    if (!dev) {
      throw new MeshError(
        'bad_request',
        '--data-dir is required (where the agent keeps its identity and state); use --dev for a throwaway agent',
      );
    }
    dataDir = await sys.makeTempDir();
    dataDirIsTemporary = true;
  }

  return {
    nodeName,
    dataDir,
    dataDirIsTemporary,
    bind,
    advertise,
    http: s.http ?? defaults.http,
    join: s.join ?? [],
    retryJoinIntervalMs,
    retryJoinMaxIntervalMs,
    retryJoinMaxAttempts: s.retryJoinMaxAttempts ?? defaults.retryJoinMaxAttempts,
    clusterKey: s.clusterKey,
    zone: s.zone ?? defaults.zone,
    logLevel: s.logLevel ?? defaults.logLevel,
    logPretty: dev,
    dev,
    leaveTimeoutMs: s.leaveTimeoutMs ?? defaults.leaveTimeoutMs,
    // A dev agent is a cluster of one: it bootstraps Raft by itself unless told to wait for others,
    // or told to join some (a second dev agent on one machine). Bootstrapping there would start a
    // second cluster that can never merge with the seed's. An explicit --bootstrap still wins.
    bootstrap: s.bootstrap ?? (dev && s.bootstrapExpect === undefined && (s.join ?? []).length === 0),
    bootstrapExpect: s.bootstrapExpect ?? 0,
    voters: s.voters ?? defaults.voters,
    configDir: s.configDir,
    enableScriptChecks: s.enableScriptChecks ?? false,
    dns: s.dns ?? defaults.dns,
    // Next to the cluster port, on the same interface: other agents must reach it as they reach us.
    inbound: s.inbound ?? { host: bind.host, port: defaults.inboundPort },
    caLeafTtlMs: s.caLeafTtlMs ?? defaults.caLeafTtlMs,
  };
}
