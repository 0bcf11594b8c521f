// What every outbound request leaves behind when it ends, whoever answered it (an instance, or
// this agent refusing it): its count and latency by source, destination and status, and an access
// log line when proxy-defaults turns them on.
import type { EngineContext } from './context.js';
import type { ProxyUpstream } from './types.js';

export function record(
  ctx: EngineContext,
  up: ProxyUpstream,
  status: number,
  durationMs: number,
  traceparent: string,
  method: string | undefined,
  path: string,
  grpcStatus?: string,
): void {
  const seconds = durationMs / 1000;
  ctx.metrics.request('outbound', up.source, up.destination, status, seconds, grpcStatus);
  if (ctx.accessLogs()) {
    ctx.log('info', 'request', {
      direction: 'outbound',
      source: up.source,
      destination: up.destination,
      method,
      path,
      status,
      grpcStatus,
      durationMs: Math.round(seconds * 1e6) / 1000,
      traceparent,
    });
  }
}
