// Accepted connections that read through one buffer per thread. A socket a net.Server accepts
// reads through its Readable stream: every read mallocs a 64 KiB buffer that is then trimmed,
// wraps it in a new ArrayBuffer, pushes it through the stream's buffer and emits 'data', and
// schedules a read-more tick. Sockets we connect ourselves avoid all of that with the `onread`
// option (the relay's upstream connections use it), but Node 20's net.Server has no such option.
//
// So an HTTP/1.1 listener accepts with `pauseOnConnect` (nothing is read yet) and moves the
// accepted connection's handle into a new net.Socket made with `onread`. On the one-hop and mesh
// paths this cut the agents' CPU per request by 3–7% (measured by hand; docs/benchmarks.md). It relies on
// three things Node does not document: an accepted socket's `_handle` and `_server`, and the
// `handle` option of the Socket constructor (which net.Server itself uses to wrap what it accepts).
// Each is checked before use; a Node without them gets undefined here, and the caller reads the
// accepted socket the ordinary way.
import { type Server, Socket } from 'node:net';
import type { OnRead } from './pool.js';

/** What adoption reads of an accepted socket: Node's own fields, typed here so they are checked, not assumed. */
interface AcceptedFields {
  _handle?: { useUserBuffer?: unknown; readStart?: unknown; readStop?: unknown } | null;
  _server?: Server | null;
  server?: Server | null;
}

/**
 * The connection `accepted` (from a server made with `pauseOnConnect`) as a socket that reads into
 * `onread`, or undefined when this Node's sockets lack what that needs. The new socket keeps the
 * server's connection count (it is decremented when the new socket closes, as for any accepted
 * socket); `accepted` is left without a handle and must not be used again.
 */
export function adoptWithOnread(accepted: Socket, onread: OnRead): Socket | undefined {
  const fields = accepted as unknown as AcceptedFields;
  const handle = fields._handle;
  if (
    !handle ||
    typeof handle.useUserBuffer !== 'function' ||
    typeof handle.readStart !== 'function' ||
    typeof handle.readStop !== 'function' ||
    !fields._server
  )
    return undefined;
  const server = fields._server;
  fields._handle = null;
  fields._server = null;
  fields.server = null;
  // As the server made the accepted socket: half-open or not.
  const options = { handle, readable: true, writable: true, onread, allowHalfOpen: accepted.allowHalfOpen };
  const adopted = new Socket(options as ConstructorParameters<typeof Socket>[0]);
  const adoptedFields = adopted as unknown as AcceptedFields;
  adoptedFields._server = server;
  adoptedFields.server = server;
  return adopted;
}
