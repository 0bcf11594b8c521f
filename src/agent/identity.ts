// The node's stable identity: an Ed25519 libp2p key kept in the data dir, so restarting with the
// same data dir is the same node (same peer id), and the incarnation to start membership with.
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Logger } from 'pino';
import { KEYS, type Store } from '../store/store.js';

export interface Identity {
  privateKey: PrivateKey;
  id: string;
  /** Incarnation to start with: one above the last one this node used. */
  incarnation: number;
  /** True when the key was created now (first start with this data dir). */
  created: boolean;
}

export async function loadIdentity(store: Store, nodeName: string, log: Logger): Promise<Identity> {
  let created = false;
  let privateKey: PrivateKey;
  const stored = await store.get(KEYS.nodePrivateKey);
  if (stored === undefined) {
    privateKey = await generateKeyPair('Ed25519');
    await store.put(KEYS.nodePrivateKey, privateKeyToProtobuf(privateKey));
    created = true;
  } else {
    privateKey = privateKeyFromProtobuf(stored);
  }
  const lastInc = Number.parseInt((await store.getString(KEYS.nodeIncarnation)) ?? '-1', 10);
  const incarnation = Number.isSafeInteger(lastInc) ? lastInc + 1 : 0;
  await store.put(KEYS.nodeIncarnation, String(incarnation));
  const previousName = await store.getString(KEYS.nodeName);
  if (previousName !== undefined && previousName !== nodeName) {
    log.warn({ previousName, nodeName }, 'node name changed; the node id stays the same');
  }
  if (previousName !== nodeName) await store.put(KEYS.nodeName, nodeName);
  const id = peerIdFromPrivateKey(privateKey).toString();
  return { privateKey, id, incarnation, created };
}
