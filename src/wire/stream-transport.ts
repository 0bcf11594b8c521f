// Point-to-point message transport over libp2p, shared by the cluster protocols (membership,
// raft): one long-lived outbound stream per peer and protocol (opened lazily, reused for every
// message), length-prefixed msgpack frames. Messages have datagram semantics, as UDP in
// memberlist: a message that cannot be delivered is dropped and counted, and the protocol's own
// timeouts and retries deal with it.
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Logger } from 'pino';
import type { Host } from '../agent/host.js';
import { hostPortToMultiaddr, parseAddress } from '../agent/host.js';
import { encode } from './codec.js';
import { encodeFrame, FrameDecoder, FrameTooLargeError } from './frame.js';

export interface TransportLimits {
  /** Largest frame accepted or sent (membership: a push-pull of 10,000 members is ~2 MiB). */
  frameBytesMax: number;
  /** Messages queued per peer while its stream opens; older ones are dropped beyond this. */
  queuedPerPeerMax: number;
  /** How long opening a stream (including a dial) may take. */
  openTimeoutMs: number;
  /** Outbound streams kept open at once; the least recently used is closed beyond this. */
  streamsMax: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  frameBytesMax: 4 * 1024 * 1024,
  queuedPerPeerMax: 64,
  openTimeoutMs: 2_000,
  streamsMax: 256,
};

export interface TransportStats {
  sent: number;
  received: number;
  sendDropped: number;
  malformed: number;
}

interface PeerOut {
  stream: Stream | undefined;
  opening: boolean;
  queue: Uint8Array[];
  /** Frames written in this event-loop turn, sent as one buffer in a microtask: one encrypted
   * write instead of one per message (a Raft Ready often holds several messages per peer). */
  batch: Uint8Array[];
}

/** Receives each complete frame with the sender's peer id. */
export type FrameHandler = (from: string, frame: Uint8Array) => void;

export class StreamTransport {
  private readonly peers = new Map<string, PeerOut>();
  readonly stats: TransportStats = { sent: 0, received: 0, sendDropped: 0, malformed: 0 };
  private stopped = false;

  constructor(
    private readonly protocol: string,
    private readonly host: Host,
    private readonly onFrame: FrameHandler,
    private readonly log: Logger,
    private readonly limits: TransportLimits = DEFAULT_TRANSPORT_LIMITS,
  ) {}

  async start(): Promise<void> {
    await this.host.handle(this.protocol, (stream, connection) => this.readLoop(stream, connection), {
      maxInboundStreams: 8,
      maxOutboundStreams: 8,
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const closing: Promise<void>[] = [];
    for (const p of this.peers.values()) {
      if (p.stream) closing.push(p.stream.close().catch(() => undefined));
    }
    this.peers.clear();
    await Promise.all(closing);
    await this.host.unhandle(this.protocol).catch(() => undefined);
  }

  /** Queue `message` for `to`; `address` ("host:port") is dialled when no connection exists. */
  send(to: string, address: string, message: unknown): void {
    if (this.stopped) return;
    const payload = encode(message);
    if (payload.length > this.limits.frameBytesMax) {
      this.stats.sendDropped++;
      this.log.warn({ to, sizeBytes: payload.length }, 'outgoing message over the frame limit; dropped');
      return;
    }
    const frame = encodeFrame(payload);
    let peer = this.peers.get(to);
    if (!peer) {
      if (this.peers.size >= this.limits.streamsMax) this.evictOne();
      peer = { stream: undefined, opening: false, queue: [], batch: [] };
      this.peers.set(to, peer);
    }
    if (peer.stream && peer.stream.status === 'open') {
      this.write(to, peer, frame);
      return;
    }
    peer.stream = undefined;
    if (peer.queue.length >= this.limits.queuedPerPeerMax) {
      peer.queue.shift();
      this.stats.sendDropped++;
    }
    peer.queue.push(frame);
    if (!peer.opening) void this.open(to, address, peer);
  }

  /** Forget the stream to a peer (e.g. it failed or left). */
  forget(peerId: string): void {
    const p = this.peers.get(peerId);
    if (!p) return;
    this.peers.delete(peerId);
    p.stream?.abort(new Error('peer forgotten'));
  }

  private evictOne(): void {
    // Map iteration order is insertion order: the first entry is the oldest stream.
    const first = this.peers.keys().next();
    if (!first.done) this.forget(first.value);
  }

  private write(to: string, peer: PeerOut, frame: Uint8Array): void {
    if (!peer.stream) return;
    peer.batch.push(frame);
    if (peer.batch.length === 1) queueMicrotask(() => this.flush(to, peer));
  }

  private flush(to: string, peer: PeerOut): void {
    const frames = peer.batch;
    peer.batch = [];
    const stream = peer.stream;
    if (!stream || frames.length === 0) {
      this.stats.sendDropped += frames.length;
      return;
    }
    try {
      // send() returns false when the stream's buffer is full; the data is still buffered, and
      // libp2p bounds the buffer (maxWriteBufferLength). Datagram semantics: no waiting here.
      stream.send(frames.length === 1 ? (frames[0] as Uint8Array) : Buffer.concat(frames));
      this.stats.sent += frames.length;
    } catch (err) {
      this.stats.sendDropped += frames.length;
      this.log.debug({ to, err: (err as Error).message }, 'send failed; dropping the stream');
      peer.stream = undefined;
    }
  }

  private async open(to: string, address: string, peer: PeerOut): Promise<void> {
    peer.opening = true;
    try {
      const peerId = peerIdFromString(to);
      const signal = AbortSignal.timeout(this.limits.openTimeoutMs);
      const target = this.host.getConnections(peerId).length > 0 ? peerId : dialTarget(peerId, address);
      const stream = await this.host.dialProtocol(target, this.protocol, { signal });
      if (this.stopped || this.peers.get(to) !== peer) {
        stream.abort(new Error('no longer needed'));
        return;
      }
      peer.stream = stream;
      const queued = peer.queue;
      peer.queue = [];
      for (const frame of queued) this.write(to, peer, frame);
      // Drain inbound side: the remote never writes on our outbound stream, but reading keeps
      // the stream's state machine moving and tells us when it closes.
      void this.drainOutbound(to, peer, stream);
    } catch (err) {
      this.stats.sendDropped += peer.queue.length;
      peer.queue = [];
      this.log.debug({ to, address, err: (err as Error).message }, 'cannot open stream');
    } finally {
      peer.opening = false;
    }
  }

  private async drainOutbound(to: string, peer: PeerOut, stream: Stream): Promise<void> {
    try {
      for await (const _ of stream) {
        // Nothing is expected on this direction; ignore.
      }
    } catch {
      // Reset or aborted; the next send opens a new stream.
    }
    if (peer.stream === stream) peer.stream = undefined;
    if (this.peers.get(to) === peer && peer.queue.length === 0 && !peer.opening) this.peers.delete(to);
  }

  private async readLoop(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    const decoder = new FrameDecoder(this.limits.frameBytesMax);
    try {
      for await (const chunk of stream) {
        const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray();
        for (const frame of decoder.push(bytes)) {
          this.stats.received++;
          this.onFrame(from, frame);
        }
      }
      if (decoder.pendingBytes > 0) {
        this.stats.malformed++;
        this.log.warn({ from, pendingBytes: decoder.pendingBytes }, 'stream ended inside a message; dropped');
      }
    } catch (err) {
      if (this.stopped) return;
      if (err instanceof FrameTooLargeError) {
        this.stats.malformed++;
        this.log.warn({ from, err: err.message }, 'oversized message; closing the stream');
        stream.abort(err);
        return;
      }
      // A reset or a closed connection: the peer went away; nothing was malformed.
      this.log.debug({ from, err: (err as Error).message }, 'stream ended');
    }
  }
}

function dialTarget(peerId: PeerId, address: string) {
  const hp = parseAddress(address);
  if (!hp) throw new Error(`no usable address for ${peerId.toString()}: "${address}"`);
  return hostPortToMultiaddr(hp).encapsulate(`/p2p/${peerId.toString()}`);
}
