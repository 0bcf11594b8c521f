// The simulator's event queue: a binary min-heap ordered by (time, insertion sequence), so events
// at the same simulated millisecond run in the order they were scheduled and a run is the same
// every time for one seed. O(log n) per event, which is what lets 1,000 agents run for simulated
// minutes in seconds of wall time.
//
// Two things keep it cheap at 1,000 agents, where a gossip publish schedules ~1,000 deliveries at
// once and a failure detected by every agent leaves ~10⁶ of them pending:
// - the heap's keys live in typed arrays, so sifting reads contiguous memory instead of chasing
//   one object per event;
// - a batch scheduled at once (pushAll: one delivery per recipient) waits in the heap as one
//   entry, its items sorted, and re-enters the heap after each item runs. Each item keeps the
//   sequence number a push() of its own would have taken, so the order of events is exactly the
//   order of pushing them one by one; only the heap is smaller.

/** Items of one pushAll(), in the order they run: by time, then by index (= sequence). */
class Batch {
  /** Next item to run (a position in `order`). */
  next = 0;

  constructor(
    readonly times: readonly number[],
    readonly order: readonly number[],
    readonly seq0: number,
    readonly run: (i: number) => void,
  ) {}
}

type Item = (() => void) | Batch;

const CAPACITY_MIN = 1024;

export class EventQueue {
  private times = new Float64Array(CAPACITY_MIN);
  private seqs = new Float64Array(CAPACITY_MIN);
  private items: Item[] = [];
  private n = 0;
  private seq = 0;
  private pending = 0;

  /** Events scheduled and not yet run (each item of a batch counts). */
  get size(): number {
    return this.pending;
  }

  push(atMs: number, run: () => void): void {
    checkTime(atMs);
    this.pending++;
    this.insert(atMs, this.seq++, run);
  }

  /**
   * Schedule `times.length` events at once: event i runs `run(i)` at `times[i]`. Same order as
   * calling push() for i = 0, 1, … in turn (each takes the next sequence number).
   */
  pushAll(times: readonly number[], run: (i: number) => void): void {
    const count = times.length;
    if (count === 0) return;
    for (const t of times) checkTime(t);
    const order = Array.from({ length: count }, (_, i) => i);
    order.sort((a, b) => (times[a] as number) - (times[b] as number) || a - b);
    const seq0 = this.seq;
    this.seq += count;
    this.pending += count;
    const first = order[0] as number;
    this.insert(times[first] as number, seq0 + first, new Batch(times, order, seq0, run));
  }

  peekMs(): number | undefined {
    return this.n === 0 ? undefined : this.times[0];
  }

  /** Run the earliest event (the caller has set the clock to peekMs()). False when there is none. */
  runNext(): boolean {
    if (this.n === 0) return false;
    const top = this.items[0] as Item;
    this.pending--;
    if (typeof top === 'function') {
      this.removeTop();
      top();
      return true;
    }
    // A batch: run its next item; the batch goes back into the heap keyed by the item after it.
    const i = top.order[top.next++] as number;
    if (top.next < top.order.length) {
      const j = top.order[top.next] as number;
      this.siftDown(0, top.times[j] as number, top.seq0 + j, top);
    } else this.removeTop();
    top.run(i);
    return true;
  }

  private insert(atMs: number, seq: number, item: Item): void {
    if (this.n === this.times.length) this.grow();
    const times = this.times;
    const seqs = this.seqs;
    const items = this.items;
    let i = this.n++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const tp = times[p] as number;
      if (tp < atMs || (tp === atMs && (seqs[p] as number) < seq)) break;
      times[i] = tp;
      seqs[i] = seqs[p] as number;
      items[i] = items[p] as Item;
      i = p;
    }
    times[i] = atMs;
    seqs[i] = seq;
    items[i] = item;
  }

  private removeTop(): void {
    const last = --this.n;
    const item = this.items.pop() as Item;
    if (last > 0) this.siftDown(0, this.times[last] as number, this.seqs[last] as number, item);
  }

  /** Put (atMs, seq, item) at position `i` and move it down to where it belongs. */
  private siftDown(i: number, atMs: number, seq: number, item: Item): void {
    const times = this.times;
    const seqs = this.seqs;
    const items = this.items;
    const n = this.n;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let c = l;
      const r = l + 1;
      if (r < n) {
        const tr = times[r] as number;
        const tl = times[l] as number;
        if (tr < tl || (tr === tl && (seqs[r] as number) < (seqs[l] as number))) c = r;
      }
      const tc = times[c] as number;
      if (tc > atMs || (tc === atMs && (seqs[c] as number) > seq)) break;
      times[i] = tc;
      seqs[i] = seqs[c] as number;
      items[i] = items[c] as Item;
      i = c;
    }
    times[i] = atMs;
    seqs[i] = seq;
    items[i] = item;
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    this.times = times;
    const seqs = new Float64Array(this.seqs.length * 2);
    seqs.set(this.seqs);
    this.seqs = seqs;
  }
}

function checkTime(atMs: number): void {
  if (!Number.isFinite(atMs)) throw new Error(`sim: event at non-finite time ${atMs}`);
}
