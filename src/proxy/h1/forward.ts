// What a request's handler and the connection that carries the request agree on: where to forward
// it (ForwardTarget), how a forward ended (Outcome), and who hears of it. Apart from exchange.ts,
// which carries requests, so the handlers (outbound-http.ts, inbound.ts) and the upstream
// connection (upstream.ts) read the contract without the machinery.
import type { HeaderOps } from '../../core/state/kinds/header-modifiers.js';
import type { H1Pool, PoolDestination } from './pool.js';

export interface ForwardTarget extends PoolDestination {
  pool: H1Pool;
  /** The start line and header block (Head.block) to send; the request's body follows as received. */
  startLine: string;
  block: string;
  timeoutMs: number;
  /** A response with a status for which this is true is dropped, not relayed (the caller retries). */
  retryOn?: ((status: number) => boolean) | undefined;
  /** Changes to the response's headers before it is relayed (a route's responseHeaders). */
  responseHeaders?: readonly HeaderOps[] | undefined;
}

/** What happened, for metrics and retries: the status sent, or why none was. */
export type Outcome =
  | { status: number; sentResponse: true }
  | {
      status: number;
      sentResponse: false;
      connectFailed: boolean;
      message: string;
      retryable?: true;
      /**
       * Answered by this agent's own limits (its wait queue, maxConnections, full mux sessions):
       * the request never reached the instance, which passive health checks must not blame.
       */
      ownLimit?: true;
      /**
       * Safe to send again: a pooled keep-alive connection closed before any byte of a response
       * (the other side most likely closed it idle as it was reused), for a request whose method
       * is idempotent; or a multiplexed stream the peer agent refused unserved.
       */
      staleSocket?: true;
    };

/**
 * Does the outcome say anything of the instance (for passive health checks)? Not when this agent
 * answered from its own limits, nor when a pooled connection turned out closed as it was reused.
 */
export function concernsInstance(o: Outcome): boolean {
  return o.sentResponse || (o.ownLimit !== true && o.staleSocket !== true);
}

/** Who hears how a forward ended (an object, so a request's handler needs no closure per attempt). */
export interface ForwardListener {
  forwarded(o: Outcome): void;
}

/** Sent again at most this often when a reused keep-alive connection turns out closed. */
export const STALE_SOCKET_RETRIES_MAX = 1;
