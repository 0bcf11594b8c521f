// A route's and a split's header changes (service-router and service-splitter requestHeaders and
// responseHeaders), applied by the caller's agent to the request it sends and to the answer it
// relays back: for each set of changes in order, its names removed, then its lines appended. The
// names are lowercase and never ones a hop frames or routes by (header-modifiers.ts refuses them),
// so a head's parsed framing stays true.
import type { OutgoingHttpHeaders } from 'node:http2';
import type { HeaderOps } from '../core/state/kinds/header-modifiers.js';
import { type Head, removeHeaders } from './h1/head.js';

/** Apply `ops` to a parsed HTTP/1.1 head (request or response). */
export function modifyHead(h: Head, ops: readonly HeaderOps[]): void {
  for (const op of ops) {
    if (op.remove.length > 0) removeHeaders(h, new Set(op.remove));
    if (op.add.length === 0) continue;
    // A header the sender named in its Connection header is hop-by-hop: its own lines go (as
    // forwarding would drop them), and the lines this agent adds are the agent's and must go out
    // (else a caller could strip a header the route forces by naming it, while the checks on this
    // side saw it set).
    if (h.connection.length > 0) {
      const named = new Set(op.add.map(([name]) => name).filter((name) => h.connection.includes(name)));
      if (named.size > 0) {
        removeHeaders(h, named);
        h.connection = h.connection.filter((t) => !named.has(t));
      }
    }
    let block = h.block;
    for (const [name, value] of op.add) block += `\r\n${name}: ${value}`;
    h.block = block;
    // The scan's line offsets no longer fit the block.
    h.drops = undefined;
  }
}

/**
 * Apply `ops` to HTTP/2 headers as Node takes them (lowercase names). A value added to a header
 * already there is joined to it with ", " (RFC 9110 §5.3: the same field), since Node refuses
 * several values for many names (content-type, user-agent, authorization…); cookie with "; "
 * (RFC 9113 §8.2.3); set-cookie, which cannot be joined, gets one more value.
 */
export function modifyH2Headers(out: OutgoingHttpHeaders, ops: readonly HeaderOps[]): void {
  for (const op of ops) {
    for (const name of op.remove) delete out[name];
    for (const [name, value] of op.add) {
      const had = out[name];
      if (had === undefined) out[name] = value;
      else if (name === 'set-cookie') out[name] = [...(Array.isArray(had) ? had : [String(had)]), value];
      else {
        const sep = name === 'cookie' ? '; ' : ', ';
        out[name] = `${Array.isArray(had) ? had.join(sep) : String(had)}${sep}${value}`;
      }
    }
  }
}
