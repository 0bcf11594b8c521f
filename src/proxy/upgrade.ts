// HTTP/1.1 Upgrade (WebSocket) through the mesh: the request head is replayed to the next hop and
// from then on the bytes flow both ways untouched, whatever protocol was negotiated.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** Replay `req`'s head on `upstream` (minus `drop`, plus `extra`), then splice the two sockets. */
export function relayUpgrade(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  upstream: Duplex,
  drop: readonly string[],
  extra: Record<string, string> = {},
): void {
  const lines = [`${req.method} ${req.url} HTTP/1.1`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    if (drop.includes(name.toLowerCase()) || Object.hasOwn(extra, name.toLowerCase())) continue;
    lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
  }
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  upstream.pipe(client);
  client.pipe(upstream);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  upstream.on('error', close);
  client.on('error', close);
  upstream.on('close', close);
  client.on('close', close);
}
