// One probe of one check, whatever its type. Never rejects: every failure, including a bug in a
// probe, becomes a critical result whose output says why, so the runner has one path for results.
import type { CheckSpec } from '../core/catalog/types.js';
import { grpcProbe } from './grpc-probe.js';
import { httpProbe } from './http-probe.js';
import type { ProbeResult } from './probe-common.js';
import { scriptProbe } from './script-probe.js';
import { tcpProbe } from './tcp-probe.js';

export { PROBE_OUTPUT_BYTES_MAX, type ProbeResult } from './probe-common.js';
export { SCRIPT_CHECKS_DISABLED_OUTPUT } from './script-probe.js';

export type ProbeSpec = Exclude<CheckSpec, { type: 'ttl' }>;

export interface ProbeOptions {
  /** Run script checks (--enable-script-checks); when false they report critical without running. */
  enableScriptChecks: boolean;
}

export async function runProbe(
  spec: ProbeSpec,
  timeoutMs: number,
  signal: AbortSignal,
  opts: ProbeOptions,
): Promise<ProbeResult> {
  try {
    switch (spec.type) {
      case 'http':
        return await httpProbe(spec, timeoutMs, signal);
      case 'tcp':
        return await tcpProbe(spec.address, timeoutMs, signal);
      case 'grpc':
        return await grpcProbe(spec, timeoutMs, signal);
      case 'script':
        return await scriptProbe(spec.args, timeoutMs, signal, opts.enableScriptChecks);
    }
  } catch (err) {
    return {
      status: 'critical',
      output: `probe failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}
