// Caller-side circuit breakers (service-defaults upstreamConfig limits; Envoy's cluster circuit
// breakers, as Consul configures them): the count of one calling service's calls to one
// destination on one agent, and who goes next. The shell keeps one gate per pair while calls are
// in flight (src/proxy/upstream-gates.ts); this part only counts and decides.
//
// As in Envoy:
// - a TCP connection past maxConnections is refused;
// - an HTTP/1.1 request past maxConcurrentRequests is refused; past maxConnections (each request
//   in flight holds a connection) it waits in a queue of at most maxPendingRequests, first come
//   first served, and past that is refused;
// - an HTTP/2 or gRPC call past maxConcurrentRequests is refused (calls share one session per
//   destination agent, so there is no connection to wait for).
import { PENDING_REQUESTS_DEFAULT, type UpstreamLimits } from '../state/kinds/upstream-config.js';

export type CallKind = 'tcp' | 'h1' | 'h2';
export type LimitName = keyof UpstreamLimits;

/** What became of a call at the gate: it holds a slot, it waits for one, or it is refused (and by which limit). */
export type Entered = 'admitted' | 'queued' | { refused: LimitName };

export class LimitGate<W> {
  private inFlight = 0;
  /** Waiting HTTP/1.1 requests, oldest first; `head` is the first still in the queue. */
  private queue: (W | undefined)[] = [];
  private head = 0;
  private waiting = 0;

  constructor(private lim: UpstreamLimits) {}

  get limits(): UpstreamLimits {
    return this.lim;
  }

  /** Calls holding a slot. */
  get active(): number {
    return this.inFlight;
  }

  /** HTTP/1.1 requests waiting for a slot. */
  get pending(): number {
    return this.waiting;
  }

  /** Length of the queue's array, holes included (kept under 2 × pending + 33; for tests). */
  get queueSlots(): number {
    return this.queue.length - this.head;
  }

  /** Nothing in flight or waiting: the gate can be forgotten. */
  get idle(): boolean {
    return this.inFlight === 0 && this.waiting === 0;
  }

  /** A call of `kind` arrives; `w` is queued when it must wait (HTTP/1.1 only). */
  enter(kind: CallKind, w: W): Entered {
    const l = this.lim;
    if (kind === 'tcp') {
      if (l.maxConnections !== undefined && this.inFlight >= l.maxConnections)
        return { refused: 'maxConnections' };
      this.inFlight++;
      return 'admitted';
    }
    if (l.maxConcurrentRequests !== undefined && this.inFlight >= l.maxConcurrentRequests)
      return { refused: 'maxConcurrentRequests' };
    // Behind the queue, not beside it: a request that comes while others wait goes last.
    if (
      kind === 'h1' &&
      (this.waiting > 0 || (l.maxConnections !== undefined && this.inFlight >= l.maxConnections))
    ) {
      if (this.waiting >= (l.maxPendingRequests ?? PENDING_REQUESTS_DEFAULT))
        return { refused: 'maxPendingRequests' };
      this.queue.push(w);
      this.waiting++;
      return 'queued';
    }
    this.inFlight++;
    return 'admitted';
  }

  /**
   * A call holding a slot ended. Returns the waiting requests that now hold a slot (at most one,
   * unless the limits were raised meanwhile), oldest first: the shell sends them on.
   */
  leave(): W[] {
    if (this.inFlight > 0) this.inFlight--;
    return this.admitWaiting();
  }

  /** A waiting request gave up (its caller left, or it waited too long). False if it was not waiting. */
  cancel(w: W): boolean {
    for (let i = this.head; i < this.queue.length; i++) {
      if (this.queue[i] !== w) continue;
      this.queue[i] = undefined;
      this.waiting--;
      this.compact();
      return true;
    }
    return false;
  }

  /** New limits (a new snapshot): the counts stay; waiting requests the new limits let through are returned. */
  setLimits(l: UpstreamLimits): W[] {
    this.lim = l;
    return this.admitWaiting();
  }

  private admitWaiting(): W[] {
    const out: W[] = [];
    const l = this.lim;
    while (this.waiting > 0) {
      const room =
        (l.maxConnections === undefined || this.inFlight < l.maxConnections) &&
        (l.maxConcurrentRequests === undefined || this.inFlight < l.maxConcurrentRequests);
      if (!room) break;
      const w = this.shift();
      if (w === undefined) break;
      this.inFlight++;
      out.push(w);
    }
    return out;
  }

  private shift(): W | undefined {
    while (this.head < this.queue.length) {
      const w = this.queue[this.head];
      this.queue[this.head] = undefined;
      this.head++;
      if (w !== undefined) {
        this.waiting--;
        this.compact();
        return w;
      }
    }
    return undefined;
  }

  /**
   * Keeps the array near the waiting count: skips the spent front, and drops the holes cancelled
   * requests left once they outnumber those waiting (requests may time out behind one that never
   * ends, and the array must not grow with them).
   */
  private compact(): void {
    if (this.waiting === 0) {
      this.queue = [];
      this.head = 0;
      return;
    }
    while (this.queue[this.head] === undefined) this.head++;
    if (this.queue.length - this.head > 2 * this.waiting + 32) {
      this.queue = this.queue.slice(this.head).filter((w) => w !== undefined);
      this.head = 0;
    } else if (this.head > 32 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
