// The libp2p host: TCP, Noise, Yamux, identify, ping, gossipsub, and the private-network
// protector when the cluster has a key. One host per agent; every cluster protocol runs on it.
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import { type GossipSub, gossipsub } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { ConnectionEncrypter, ConnectionProtector, MessageStream, PrivateKey } from '@libp2p/interface';
import { ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { MeshError } from '../api/types.js';
import type { HostPort } from './agent-config.js';

export type Host = Libp2p<{ pubsub: GossipSub; identify: unknown; ping: unknown }>;

export interface HostInit {
  privateKey: PrivateKey;
  bind: HostPort;
  advertise: HostPort;
  clusterKey: Uint8Array | undefined;
  /** Upper bound on open connections; libp2p prunes the least valuable beyond it. */
  connectionsMax: number;
}

/** libp2p's swarm key file format, built from our 32-byte cluster key. */
export function swarmKey(key: Uint8Array): Uint8Array {
  if (key.length !== 32) throw new Error(`cluster key must be 32 bytes, got ${key.length}`);
  const hex = Buffer.from(key).toString('hex');
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${hex}`);
}

export async function createHost(init: HostInit): Promise<Host> {
  lazyWindowUpdates();
  try {
    return await createLibp2pHost(init);
  } catch (err) {
    throw listenError(init.bind, err) ?? err;
  }
}

/**
 * libp2p reports a listen address it could not bind as an UnsupportedListenAddressesError whose
 * message is a paragraph about `faultTolerance` with the socket error's stack inside, and keeps
 * no reference to that error. Say instead what the operator can act on, as --http, --dns and
 * --inbound do; undefined when `err` is not such a failure.
 */
export function listenError(bind: HostPort, err: unknown): MeshError | undefined {
  if (!(err instanceof Error) || err.name !== 'UnsupportedListenAddressesError') return undefined;
  const code = /\blisten (E[A-Z]+)\b/.exec(err.message)?.[1];
  const why =
    code === 'EADDRINUSE'
      ? 'the address is in use (is another agent running?)'
      : code === 'EACCES'
        ? 'no permission (ports below 1024 need privileges)'
        : code === 'EADDRNOTAVAIL'
          ? 'no interface of this host has that address'
          : (code ?? 'libp2p could not listen there');
  return new MeshError(
    'unavailable',
    `cannot listen for cluster traffic on ${formatAddress(bind)}: ${why}; set --bind`,
  );
}

function createLibp2pHost(init: HostInit): Promise<Host> {
  return createLibp2p({
    privateKey: init.privateKey,
    addresses: {
      listen: [hostPortToMultiaddr(init.bind).toString()],
      announce: init.advertise.port === 0 ? [] : [hostPortToMultiaddr(init.advertise).toString()],
    },
    transports: [tcp()],
    connectionEncrypters: [oneWritePerFrame(noise())],
    streamMuxers: [yamux()],
    ...(init.clusterKey
      ? { connectionProtector: namedHandshakeFailures(preSharedKey({ psk: swarmKey(init.clusterKey) })) }
      : {}),
    connectionManager: {
      maxConnections: init.connectionsMax,
      // Many agents behind one address (tests, NAT) connect at once; libp2p's default is 5/s per IP.
      inboundConnectionThreshold: 1000,
      maxIncomingPendingConnections: 64,
    },
    // SWIM is the failure detector; libp2p's monitor would open a ping stream on every connection
    // every 10 s and abort connections on a missed ping, which under load only adds churn.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        // Membership updates are published before the topic mesh forms (a joining node).
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        // No per-message Ed25519 signatures: every hop is already authenticated by Noise (and the
        // pre-shared key), membership updates name their originator inside, and signing plus
        // verifying every message was the largest CPU cost at N=30 (~14% of busy time). Message
        // ids are then sha256 of the content, which dedups identical updates from any publisher.
        globalSignaturePolicy: 'StrictNoSign',
        // Agents on one host or behind one NAT share an IP; the colocation penalty would cut them
        // out of the mesh (stack.md: with ≥12 agents on 127.0.0.1 nothing is delivered).
        scoreParams: { IPColocationFactorWeight: 0 },
        // Gossip batches are small; anything above this is not ours.
        maxInboundDataLength: 1024 * 1024,
      }),
    },
  }) as unknown as Promise<Host>;
}

/**
 * libp2p's TCP connection hands each buffer of what it is given to its own `socket.write`, and
 * Noise gives it two per frame (the 2-byte length, then the ciphertext): two syscalls and, with
 * TCP_NODELAY, two packets for every message. Joining them before the write halves both; on the
 * Raft leader under load the socket writes were the largest single cost (docs/benchmarks.md).
 */
export function oneWritePerFrame<C>(
  factory: (components: C) => ConnectionEncrypter,
): (components: C) => ConnectionEncrypter {
  const joined = (conn: MessageStream): MessageStream => {
    const send = conn.send.bind(conn);
    conn.send = (data) => send(data instanceof Uint8Array ? data : data.subarray());
    return conn;
  };
  return (components) => {
    const inner = factory(components);
    const outer: ConnectionEncrypter = Object.create(inner);
    outer.secureOutbound = (conn, options) => inner.secureOutbound(joined(conn), options);
    outer.secureInbound = (conn, options) => inner.secureInbound(joined(conn), options);
    return outer;
  };
}

/** What the message of every failed pre-shared-key handshake starts with. */
export const PSK_HANDSHAKE_FAILED = 'pre-shared key handshake';
/** The dial progress event sent when the pre-shared-key handshake starts (TCP is connected). */
export const PSK_HANDSHAKE_EVENT = 'mesh:psk-handshake';

/**
 * The pre-shared-key handshake is where agents with different cluster keys part: the other side
 * reads our nonce as the start of a libp2p protocol, then resets the connection or waits for more.
 * libp2p passes that on bare (`read ECONNRESET`), or, when the dial's signal fires first, as the
 * signal's TimeoutError: indistinguishable from any network failure. So say where it happened:
 * in the error's message, and by a progress event to the dial's `onProgress` (libp2p sends none
 * between the TCP connect and the encryption handshake), which sees the timeouts too.
 */
export function namedHandshakeFailures<C>(
  factory: (components: C) => ConnectionProtector,
): (components: C) => ConnectionProtector {
  return (components) => {
    const inner = factory(components);
    const outer: ConnectionProtector = Object.create(inner);
    outer.protect = async (conn, options) => {
      // libp2p hands the protector the dial's options, onProgress included (upgrader.js).
      const progress = options as { onProgress?: (event: { type: string; detail: unknown }) => void };
      progress?.onProgress?.({ type: PSK_HANDSHAKE_EVENT, detail: undefined });
      try {
        return await inner.protect(conn, options);
      } catch (err) {
        throw new Error(`${PSK_HANDSHAKE_FAILED}: ${(err as Error).message}`, { cause: err });
      }
    };
    return outer;
  };
}

/**
 * js-libp2p's yamux (8.x) answers every data frame it receives with a window update: one more
 * encrypted frame and socket write for every Raft or gossip message. hashicorp/yamux (and
 * go-yamux) send one only once at least half the receive window has been used, which keeps the
 * sender from ever stalling while saving nearly all of them. Same rule here; a stream that
 * still has to send flags (SYN/ACK) or is paused goes through the original code untouched.
 */
export function lazyWindowUpdates(): void {
  type Fields = { state: StreamState; recvWindow: number; recvWindowCapacity: number };
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: Fields) => void };
  const eager = proto.sendWindowUpdate;
  if (typeof eager !== 'function' || LAZY in eager) return;
  const lazy = function (this: Fields): void {
    if (this.state === StreamState.Established && this.recvWindowCapacity * 2 > this.recvWindow) return;
    eager.call(this);
  };
  Object.defineProperty(lazy, LAZY, { value: true });
  proto.sendWindowUpdate = lazy;
}
const LAZY = Symbol('lazyWindowUpdates');

/** host:port → /ip4|ip6|dns/<host>/tcp/<port>. */
export function hostPortToMultiaddr(hp: HostPort): Multiaddr {
  const host = hp.host.replace(/^\[|\]$/g, '');
  let proto = 'dns';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) proto = 'ip4';
  else if (host.includes(':')) proto = 'ip6';
  return multiaddr(`/${proto}/${host}/tcp/${hp.port}`);
}

/** "host:port" (as stored in membership) → HostPort. IPv6 hosts are bracketed. */
export function parseAddress(address: string): HostPort | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { host: m[1] as string, port };
}

export function formatAddress(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** A TCP multiaddr's host:port, or undefined for other kinds. */
export function multiaddrToAddress(ma: Multiaddr): string | undefined {
  const parts = ma.toString().split('/');
  // ['', 'ip4', '1.2.3.4', 'tcp', '7400', ...]
  if (parts.length < 5 || parts[3] !== 'tcp') return undefined;
  const host = parts[2] as string;
  return formatAddress({ host, port: Number(parts[4]) });
}
