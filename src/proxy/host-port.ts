// The HTTP proxy port: an upstream whose service is "*". Each request goes to the service its Host
// header names, or, from a client that uses the port as its HTTP proxy (http_proxy=http://127.0.0.1:PORT),
// the service its absolute-form target names (`GET http://api/users HTTP/1.1`), which is then
// forwarded in origin form (`GET /users`) with a Host made from that target, as RFC 9112 §3.2.2
// asks of a proxy. After that choice a
// request is routed, balanced, authorised and counted like one on an upstream port of its own.
import { SERVICE_NAME_PATTERN } from '../core/catalog/definition.js';
import { type TunnelKind, Tunnels } from './connect-tunnel.js';
import type { EngineContext } from './context.js';
import type { ListenerConnections } from './drain.js';
import type { Exchange } from './h1/exchange.js';
import { headerValue, replaceHeader } from './h1/head.js';
import { handleH1 } from './outbound-http.js';
import { record } from './outbound-record.js';
import { splitUrl } from './request-info.js';
import type { ProxyUpstream } from './types.js';

export type HostTarget =
  | {
      service: string;
      target: string;
      /** The Host to send instead of the client's: set for an absolute-form target (RFC 9112 §3.2.2). */
      host?: string;
    }
  | { status: number; message: string };

/** Longest Host or target quoted back in an error. */
const QUOTED_CHARS_MAX = 60;
/** `http://` (any case), then the authority, then the path and query if any. */
const ABSOLUTE_HTTP = /^http:\/\/([^/?#]*)([^#]*)/i;

const quoted = (s: string): string => JSON.stringify(s.slice(0, QUOTED_CHARS_MAX));
/** A host name as the mesh compares it: without case or a trailing dot. */
const hostName = (s: string): string => s.replace(/\.$/, '').toLowerCase();

/**
 * The service a request on the HTTP proxy port names, and the target to forward (origin form);
 * or the status and message to refuse it with. Names are matched without case, port, userinfo or
 * a trailing dot: `API.:8080` names `api`.
 */
export function hostTarget(method: string, target: string, host: string | undefined): HostTarget {
  if (method === 'CONNECT') return connectTarget(target, host);
  let authority = host;
  let forward = target;
  const absolute = target[0] !== '/' && target !== '*';
  if (absolute) {
    const m = ABSOLUTE_HTTP.exec(target);
    if (!m)
      return {
        status: 400,
        message: `mesh: the HTTP proxy port takes http:// targets only, got ${quoted(target)}`,
      };
    authority = m[1] as string;
    const rest = m[2] as string;
    forward = rest === '' ? '/' : rest[0] === '?' ? `/${rest}` : rest;
  }
  if (authority === undefined || authority === '')
    return { status: 400, message: 'mesh: the request names no service (no Host header)' };
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const service = hostName(hostPort.replace(/:\d*$/, ''));
  if (!SERVICE_NAME_PATTERN.test(service))
    return {
      status: 404,
      message: `mesh: ${quoted(authority)} is not a service name: the HTTP proxy port routes by the service named in the Host`,
    };
  // hostPort is a service name, maybe a dot and a port: safe as a field value.
  return absolute ? { service, target: forward, host: hostPort } : { service, target: forward };
}

/** A CONNECT's authority-form target: a host and a port, nothing else (RFC 9110 §9.3.6). */
const AUTHORITY_FORM = /^([^:/?#@[\]\s]+):(\d{1,5})$/;
/** A Host field value as a CONNECT's may be: a name, then a port or none. */
const HOST_FIELD = /^([^:]*)(?::(\d*))?$/;

/**
 * Does a CONNECT's Host name the authority its target names? The same host, and the same port
 * when the Host has one (a Host without a port, `Host: greeter` for `CONNECT greeter:443`, names
 * the host alone).
 */
function sameAuthority(host: string, name: string, port: string): boolean {
  const m = HOST_FIELD.exec(host);
  if (!m || hostName(m[1] as string) !== hostName(name)) return false;
  const hostPort = m[2];
  return hostPort === undefined || hostPort === '' || Number(hostPort) === Number(port);
}

/**
 * The service a CONNECT names (`CONNECT greeter:50051`: greeter), or the status and message to
 * refuse it with. The port is the client's idea of the service's: the mesh picks the instance.
 * The target is the authority (RFC 9110 §9.3.6): `host` (the Host header, if any; empty counts as
 * none) need not be there, but one that names another authority is refused, so nothing on the
 * way can read the request as going elsewhere than where the tunnel goes.
 */
export function connectTarget(target: string, host?: string): HostTarget {
  const m = AUTHORITY_FORM.exec(target);
  if (!m)
    return {
      status: 400,
      message: `mesh: CONNECT takes a service name and a port (CONNECT greeter:50051), got ${quoted(target)}`,
    };
  if (host !== undefined && host !== '' && !sameAuthority(host, m[1] as string, m[2] as string))
    return {
      status: 400,
      message: `mesh: the Host header ${quoted(host)} names another authority than the CONNECT target ${quoted(target)}: send the target as the Host, or no Host`,
    };
  const service = hostName(m[1] as string);
  if (!SERVICE_NAME_PATTERN.test(service))
    return {
      status: 404,
      message: `mesh: ${quoted(target)} is not a service name: the HTTP proxy port opens tunnels to the service a CONNECT names`,
    };
  return { service, target };
}

/** What a refused request's access log shows of its target: the path, never a URL's userinfo or query. */
function loggedPath(target: string): string {
  return target[0] === '/' ? splitUrl(target).path : '';
}

/**
 * The handler of one HTTP proxy port. The per-destination upstreams it hands on are made once per
 * listener upstream (a snapshot that changes the port's caller makes new ones) and are bounded by
 * the services the snapshot routes to.
 */
export class HostPort {
  private base: ProxyUpstream | undefined = undefined;
  private byService = new Map<string, ProxyUpstream>();
  private readonly tunnels: Tunnels;

  /**
   * `current`: the port's upstream as of the latest snapshot (a tunnel's calls read it).
   * `tunnelIdleTimeoutMs`: TUNNEL_LIMITS.h2IdleTimeoutMs, unless a test shortens it. `conns`: the
   * listener's connections, which its HTTP/2 tunnels join (drain.ts).
   */
  constructor(
    private readonly ctx: EngineContext,
    current: () => ProxyUpstream,
    tunnelIdleTimeoutMs: number,
    conns: ListenerConnections,
  ) {
    this.tunnels = new Tunnels(
      ctx,
      (service) => this.upstreamTo(current(), service),
      conns,
      tunnelIdleTimeoutMs,
    );
  }

  handle(up: ProxyUpstream, x: Exchange): void {
    const startedMs = performance.now();
    let t = this.route(x);
    if ('tunnel' in t) {
      // A CONNECT has no content (RFC 9110 §9.3.6): a length or chunking would take the tunnel's
      // first bytes as a body.
      if (!x.replayable)
        t = {
          status: 400,
          message: 'mesh: a CONNECT request has no body (no Content-Length or Transfer-Encoding)',
        };
      else if (this.tunnels.open(x, t.service, t.tunnel)) return;
      else t = { status: 405, message: 'mesh: a CONNECT tunnel needs a connection of its own' };
    }
    if ('service' in t) {
      x.head.target = t.target;
      if (t.host !== undefined) replaceHeader(x.head, 'host', t.host);
      handleH1(this.ctx, this.upstreamTo(up, t.service), x);
      return;
    }
    x.reply(t.status, t.message);
    // Counted under destination "*": a name the caller made up must not become a label.
    const { method, target, traceparent } = x.head;
    const path = loggedPath(target);
    record(this.ctx, up, t.status, performance.now() - startedMs, traceparent ?? '', method, path);
    x.finish();
  }

  /**
   * hostTarget, then: does this snapshot route HTTP/1.1 to the service named (a request), or what
   * does a tunnel to it carry (a CONNECT)?
   */
  private route(x: Exchange): HostTarget | { service: string; tunnel: TunnelKind } {
    const t = hostTarget(x.head.method, x.head.target, headerValue(x.head, 'host'));
    if (!('service' in t)) return t;
    const protocol = this.ctx.routing.chainProtocol(t.service);
    if (protocol === undefined)
      return { status: 404, message: `mesh: no service named "${t.service}" in the catalog` };
    if (x.head.method === 'CONNECT') {
      if (protocol !== 'http') return { service: t.service, tunnel: protocol === 'tcp' ? 'tcp' : 'h2' };
      return {
        status: 405,
        message: `mesh: service "${t.service}" speaks http: call http://${t.service}/… through this port without CONNECT (the agents encrypt the hop between them)`,
      };
    }
    if (protocol === 'http') return t;
    return {
      status: 404,
      message: `mesh: service "${t.service}" speaks ${protocol}, not HTTP/1.1: give it an upstream port of its own, or reach it through this port with CONNECT`,
    };
  }

  private upstreamTo(up: ProxyUpstream, service: string): ProxyUpstream {
    if (up !== this.base) {
      this.base = up;
      this.byService = new Map();
    }
    let to = this.byService.get(service);
    if (!to) {
      // Made once per snapshot (a snapshot brings a new `up`), so limits follow configuration.
      const limits = this.ctx.routing.upstreamLimits(up.source, service);
      const { source, bindHost, port, protocol } = up;
      to = {
        source,
        destination: service,
        bindHost,
        port,
        protocol,
        ...(limits !== undefined ? { limits } : {}),
      };
      this.byService.set(service, to);
    }
    return to;
  }
}
