// `mesh agent`: start an agent, join the seeds with retry and backoff, and leave gracefully on
// SIGINT/SIGTERM (others then see `left`, not `failed`). A second signal exits at once.
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import { createLogger } from '../log.js';
import { Agent } from './agent.js';
import type { AgentConfig } from './agent-config.js';

export async function runAgent(config: AgentConfig): Promise<void> {
  const log = createLogger(config.logLevel, config.logPretty);
  const abort = new AbortController();
  // The join starts as soon as membership runs, while Raft and the HTTP API finish starting:
  // other agents see this one sooner (bench:membership's join figure).
  let joinFailure: Promise<Error | undefined> = Promise.resolve(undefined);
  const startJoin = (a: Agent): void => {
    if (config.join.length === 0) return;
    joinFailure = retryJoin(a, config, log.child({ module: 'join' }), abort.signal).then(
      () => undefined,
      (err: Error) => err,
    );
  };
  let agent: Agent;
  try {
    agent = await Agent.start(config, log, startJoin);
  } catch (err) {
    abort.abort();
    const msg = err instanceof MeshError ? err.message : (err as Error).stack;
    log.fatal({ err: msg }, 'agent failed to start');
    await flushAndExit(log, 1);
    return;
  }
  if (config.dev) {
    const s = agent.self();
    log.info(
      `dev agent ready: cluster ${s.address}, HTTP API http://${s.http}, DNS ${s.dns}, node ${s.name} (${s.id})`,
    );
  }

  let exiting = false;
  const exit = async (code: number, leave: boolean): Promise<void> => {
    if (exiting) return;
    exiting = true;
    abort.abort();
    // Never hang on the way out: a stuck leave still exits within leaveTimeoutMs + 2 s.
    const hard = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(code === 0 ? 1 : code);
    }, config.leaveTimeoutMs + 2_000);
    hard.unref();
    await agent
      .stop({ leave })
      .catch((err: Error) => log.error({ err: err.message }, 'error while stopping'));
    await flushAndExit(log, code);
  };
  agent.onExit = () => void exit(0, false);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn({ signal: sig }, 'second signal: exiting without leaving');
      process.exit(1);
    }
    log.info({ signal: sig }, 'signal received: leaving the cluster');
    void exit(0, true);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGHUP re-reads --config-dir, as Consul's: a bad file is logged and changes nothing.
  process.on('SIGHUP', () => {
    agent.services.reload().then(
      (r) => log.info({ services: r.services, files: r.files }, 'reloaded on SIGHUP'),
      (err: Error) => log.error({ err: err.message }, 'reload on SIGHUP failed; nothing changed'),
    );
  });

  void joinFailure.then(async (err) => {
    if (!err) return;
    log.fatal({ err: err.message }, 'could not join the cluster');
    await exit(1, false);
  });
}

/** Consul's retry-join: try every seed, back off (doubling, capped, jittered), until one answers. */
export async function retryJoin(
  agent: Agent,
  config: AgentConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  let waitMs = config.retryJoinIntervalMs;
  let lastError = '';
  for (
    let attempt = 1;
    config.retryJoinMaxAttempts === 0 || attempt <= config.retryJoinMaxAttempts;
    attempt++
  ) {
    if (signal.aborted) return;
    try {
      await agent.join(config.join, signal);
      return;
    } catch (err) {
      if (signal.aborted) return;
      lastError = (err as Error).message;
      log.warn({ attempt, retryInMs: waitMs, err: lastError }, 'join failed; will retry');
    }
    const jittered = Math.round(waitMs * (0.8 + 0.4 * Math.random()));
    await new Promise<void>((resolve) => {
      const onAbort = (): void => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, jittered);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    waitMs = Math.min(waitMs * 2, config.retryJoinMaxIntervalMs);
  }
  // The last reason goes in the fatal line too: it is the one an operator reads first.
  throw new Error(
    `gave up joining ${config.join.join(', ')} after ${config.retryJoinMaxAttempts} attempts; the last: ${lastError}`,
  );
}

async function flushAndExit(log: Logger, code: number): Promise<void> {
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  process.exit(code);
}
