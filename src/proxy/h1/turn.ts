// Writes that leave at the end of the event loop's turn. In one turn (libuv's poll phase) the relay
// reads every connection that has bytes and relays each request or response as soon as it has
// parsed it. Written at once, each would wake its reader (the upstream server, the client) while
// this thread still has the turn's other requests to relay: the reader then runs beside the relay
// on the other core, handles one request, sleeps, and is woken again for the next. Held until the
// turn ends (setImmediate: the check phase, which follows the poll phase before the loop can
// block again), the turn's writes leave together, and a reader woken once finds all of them.
// HAProxy sends the same way, after it has processed every event of a poll; the mux session
// (mux/session.ts) does it for the frames of all its streams.
//
// Measured by hand on the one-hop path (docs/benchmarks.md): ~10% more requests a second, and the
// upstream's context switches per request halved. At a low rate a turn holds one event, so the
// write leaves as soon as that event's callback returns.
//
// Only small writes start a hold (HOLD_BYTES_MAX): a bulk transfer gains nothing from waiting.
//
// A socket is corked at its first such write of a turn and uncorked at the turn's end, so Node's
// Writable does the holding: whatever else is written to the socket in that turn (a larger chunk,
// an interim or local answer) queues behind it, in order; end() sends what is held before the FIN;
// write() still says when the socket's buffer is full (the caller then waits for 'drain', which
// follows the turn's flush). A connection cut on purpose (cutOff) first hands what it holds to the
// kernel, as it would have gone before this file existed; destroy() alone drops it, as it drops
// anything unsent. A socket without cork() (a stream of a mux session, which batches its own
// frames) is written at once.

/** What holding needs of a socket: net.Socket and tls.TLSSocket have it. */
export interface Corkable {
  cork(): void;
  uncork(): void;
  readonly writableCorked: number;
  destroy(err?: Error): unknown;
}

/** A socket `writeInTurn` writes to: corkable, or written at once. */
export interface TurnWritable extends Partial<Corkable> {
  write(chunk: Buffer | string, encoding?: BufferEncoding): boolean;
}

/**
 * A write this large or larger does not start a hold: it goes out at once, unless its socket is
 * held already this turn (it then queues behind what is held, in order). Holding it gains nothing,
 * since a reader handed this many bytes has work enough for one wake-up, and would make write()
 * report the socket full, so a bulk transfer would pause and resume its source for every chunk it
 * reads: by hand a 64 MiB response through one hop took 0.18–0.26 s with every write held,
 * 0.14–0.20 s with this bound and 0.13–0.24 s with none held. 16 KiB is at or under a socket's
 * default high-water mark (16 KiB in Node 20, 64 KiB from Node 22), so a write that starts a hold
 * never reports the socket full by itself. Counted in bytes for a Buffer, in characters for a
 * string (the relay's strings are latin1 heads, a byte a character).
 */
export const HOLD_BYTES_MAX = 16 * 1024;

/**
 * Sockets corked this turn, uncorked at its end. A socket is added only while not corked, so at
 * most once a turn: the list is bounded by the thread's open connections, which the listeners'
 * connectionsMax and the pools' limits (pool.ts) bound.
 */
const corked: Corkable[] = [];

function uncorkAll(): void {
  // A socket corked while this runs (none is today: a write completes or fails without calling
  // back synchronously) is uncorked by this same loop, which reads the length afresh each time.
  for (let i = 0; i < corked.length; i++) {
    const socket = corked[i] as Corkable;
    try {
      socket.uncork();
    } catch (err) {
      // Not expected (Node reports write errors asynchronously), but a socket that cannot be
      // flushed must not stay corked, holding its writes until a timeout: it is cut, and its
      // exchange ends as for any broken connection. The others are still flushed.
      socket.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }
  corked.length = 0;
}

/**
 * Write `chunk` to `socket` at the end of this turn when it is small, at once when it is not (see
 * the top of the file); false: the socket's buffer is full, wait for 'drain'.
 */
export function writeInTurn(
  socket: TurnWritable,
  chunk: Buffer | string,
  encoding?: BufferEncoding,
): boolean {
  if (socket.cork !== undefined && socket.writableCorked === 0 && chunk.length < HOLD_BYTES_MAX) {
    socket.cork();
    if (corked.push(socket as Corkable) === 1) setImmediate(uncorkAll);
  }
  return socket.write(chunk, encoding);
}

/**
 * Cut `socket` off (a response broken midway, a request body that broke its framing): what this
 * turn held for it goes to the kernel first, so the peer gets every byte it would have got had
 * the writes not been held, then the connection is destroyed.
 */
export function cutOff(socket: Partial<Corkable> & { destroy(err?: Error): unknown }): void {
  if (socket.uncork !== undefined) for (let n = socket.writableCorked ?? 0; n > 0; n--) socket.uncork();
  socket.destroy();
}

/** Sockets waiting for the end of the turn (tests). */
export function corkedInTurn(): number {
  return corked.length;
}
