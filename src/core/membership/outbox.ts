// Everything the core wants done, queued in order until the shell calls drain(). Queues are
// bounded so a shell that stops draining cannot make the core grow without limit.
import type { MemberEvent, Message, NodeId, Outgoing, Output, Update } from './types.js';

export class Outbox {
  private messages: Outgoing[] = [];
  private updates: Update[] = [];
  private events: MemberEvent[] = [];
  /** Outputs discarded because a queue was full. */
  dropped = 0;

  /**
   * @param batchMax updates per published batch (limits.updatesPerMessageMax)
   * @param queueMax entries per queue before new ones are dropped
   */
  constructor(
    private readonly batchMax: number,
    private readonly queueMax: number,
  ) {
    if (!Number.isInteger(batchMax) || batchMax < 1) throw new Error('outbox: batchMax must be ≥ 1');
  }

  send(to: NodeId, address: string, msg: Message): void {
    if (this.messages.length >= this.queueMax) {
      this.dropped++;
      return;
    }
    this.messages.push({ to, address, msg });
  }

  publish(update: Update): void {
    if (this.updates.length >= this.queueMax) {
      this.dropped++;
      return;
    }
    this.updates.push(update);
  }

  event(event: MemberEvent): void {
    if (this.events.length >= this.queueMax) {
      this.dropped++;
      return;
    }
    this.events.push(event);
  }

  drain(): Output {
    const publish: Update[][] = [];
    for (let i = 0; i < this.updates.length; i += this.batchMax) {
      publish.push(this.updates.slice(i, i + this.batchMax));
    }
    const out: Output = { messages: this.messages, publish, events: this.events };
    this.messages = [];
    this.updates = [];
    this.events = [];
    return out;
  }
}
