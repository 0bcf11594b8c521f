// This agent's leaf certificates: one per local service name, for the proxy (the service's identity
// as a caller, and as the destination its inbound listener proves). The key is made here and never
// leaves the agent; a voter signs the CSR. Renewed at a random point between half and two thirds of
// the lifetime (so agents do not renew together), at once when the active root changes, and
// retried with backoff (1 s doubling to 30 s) when the signer refuses or is unreachable — typically
// because the signer's catalog has not yet heard of a just-registered service.
import type { Logger } from 'pino';
import type { ProxyCert } from '../proxy/types.js';
import type { CaManager } from './manager.js';
import { createLeafKeyAndCsr } from './x509.js';

const CHECK_INTERVAL_MS = 1_000;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** Signing requests in flight at once: a host with many services does not flood the signer. */
const IN_FLIGHT_MAX = 4;

interface Held {
  cert: ProxyCert;
  rootId: string;
  renewAtMs: number;
}

export interface LeafCertsInit {
  ca: CaManager;
  /** Names of the services registered on this agent now. */
  services: () => string[];
  /** Called when the set of certificates changed (the proxy gets a new snapshot). */
  onChange: () => void;
  log: Logger;
}

export class LeafCerts {
  private readonly held = new Map<string, Held>();
  private readonly retryAt = new Map<string, { atMs: number; delayMs: number }>();
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  readonly counters = { issued: 0, failures: 0 };

  constructor(private readonly init: LeafCertsInit) {}

  start(): void {
    this.timer = setInterval(() => this.sync(), CHECK_INTERVAL_MS);
    this.sync();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  certs(): Record<string, ProxyCert> {
    const out: Record<string, ProxyCert> = {};
    for (const [name, h] of this.held) out[name] = h.cert;
    return out;
  }

  /** Issue what is missing or due; drop certificates of services no longer here. */
  sync(): void {
    const roots = this.init.ca.roots();
    const wanted = new Set(this.init.services());
    let dropped = false;
    for (const name of this.held.keys()) {
      if (!wanted.has(name)) {
        this.held.delete(name);
        dropped = true;
      }
    }
    if (dropped) this.init.onChange();
    if (roots === undefined) return;
    const now = Date.now();
    for (const name of wanted) {
      if (this.inFlight.has(name) || this.inFlight.size >= IN_FLIGHT_MAX) continue;
      const h = this.held.get(name);
      const due = h === undefined || h.rootId !== roots.activeRootId || now >= h.renewAtMs;
      if (!due || now < (this.retryAt.get(name)?.atMs ?? 0)) continue;
      void this.issue(name, roots.trustDomain);
    }
  }

  private async issue(service: string, trustDomain: string): Promise<void> {
    this.inFlight.add(service);
    try {
      const { keyPem, csrPem } = await createLeafKeyAndCsr({ trustDomain, service });
      const leaf = await this.init.ca.issue(service, csrPem);
      const now = Date.now();
      const lifeMs = Math.max(0, leaf.notAfterMs - now);
      // Between 1/2 and 2/3 of the remaining lifetime.
      const renewAtMs = now + Math.floor(lifeMs * (0.5 + Math.random() / 6));
      const first = !this.held.has(service);
      this.held.set(service, {
        cert: { certPem: leaf.certPem, keyPem, chainPem: leaf.chainPem, notAfterMs: leaf.notAfterMs },
        rootId: leaf.rootId,
        renewAtMs,
      });
      this.retryAt.delete(service);
      this.counters.issued++;
      this.init.log.info(
        { service, notAfter: new Date(leaf.notAfterMs).toISOString(), rootId: leaf.rootId.slice(0, 16) },
        first ? 'obtained a leaf certificate' : 'renewed a leaf certificate',
      );
      this.init.onChange();
    } catch (err) {
      this.counters.failures++;
      const prev = this.retryAt.get(service)?.delayMs ?? RETRY_MIN_MS / 2;
      const delayMs = Math.min(RETRY_MAX_MS, prev * 2);
      this.retryAt.set(service, { atMs: Date.now() + delayMs, delayMs });
      this.init.log.warn(
        { service, err: (err as Error).message, retryInMs: delayMs },
        'could not obtain a leaf certificate',
      );
    } finally {
      this.inFlight.delete(service);
    }
  }
}
