// The request body of an HTTP/2 or gRPC call that may be retried. A retry sends the request again,
// body included, but the caller sent the body once: what came so far is kept (up to a bound), so a
// new attempt is sent all of it and then what follows. Linkerd and Envoy keep a retried request's
// body the same way, with the same kind of bound; a larger body makes the call not retryable.

import type { ClientHttp2Stream, ServerHttp2Stream } from 'node:http2';

export const H2_BODY_LIMITS = Object.freeze({
  /**
   * The most of a call's body kept for a retry (Linkerd's default, 64 KiB). A unary gRPC call's
   * message is almost always smaller; a larger body (an upload, a long client stream) is sent on
   * once and its call is not retried.
   */
  replayBytesMax: 64 * 1024,
});

/** The caller's body, fed to one attempt's upstream stream at a time. */
export class ReplayBody {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  /** No longer kept: more than the bound came, or the response began and no retry can follow. */
  private released = false;
  private target: ClientHttp2Stream | undefined;
  private readonly resume = (): void => {
    if (!this.caller.destroyed) this.caller.resume();
  };

  constructor(
    private readonly caller: ServerHttp2Stream,
    private readonly limitBytes: number = H2_BODY_LIMITS.replayBytesMax,
  ) {
    caller.on('data', (c: Buffer) => this.onData(c));
    caller.once('end', () => {
      this.ended = true;
      this.endTarget();
    });
  }

  /** Whether a new attempt could be sent the whole body: nothing was dropped. */
  get replayable(): boolean {
    return !this.released;
  }

  /** Sends the body so far to `up`, then what follows, until `detach` or another `attach`. */
  attach(up: ClientHttp2Stream): void {
    if (this.released) throw new Error('the request body was not kept: the call cannot be sent again');
    this.detachTarget();
    this.target = up;
    for (const c of this.chunks) up.write(c);
    if (this.ended) this.endTarget();
  }

  /** `up`'s attempt is over: nothing more goes to it. */
  detach(up: ClientHttp2Stream): void {
    if (this.target === up) this.detachTarget();
  }

  /** No further attempt will be made (a response is on its way to the caller): drop what was kept. */
  release(): void {
    this.released = true;
    this.chunks = [];
    this.bytes = 0;
  }

  private onData(c: Buffer): void {
    if (!this.released) {
      if (this.bytes + c.length > this.limitBytes) this.release();
      else {
        this.chunks.push(c);
        this.bytes += c.length;
      }
    }
    const t = this.target;
    if (t === undefined || t.destroyed || t.writableEnded) return;
    // Backpressure, as pipe() does it: the caller waits while the upstream stream is full.
    if (!t.write(c)) {
      this.caller.pause();
      t.once('drain', this.resume);
    }
  }

  private endTarget(): void {
    const t = this.target;
    if (t !== undefined && !t.destroyed && !t.writableEnded) t.end();
  }

  private detachTarget(): void {
    const t = this.target;
    if (t === undefined) return;
    this.target = undefined;
    t.off('drain', this.resume);
    // A caller paused for the old stream must not stay paused for the next.
    this.resume();
  }
}
