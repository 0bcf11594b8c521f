// What the DNS server needs from the agent: a read-only view of the local service catalog.
// server.ts re-exports these, so callers import everything DNS from one place.

export interface DnsInstance {
  /** Node (agent) name hosting the instance. */
  node: string;
  /** The instance's address: an IPv4 or IPv6 literal, or a host name. */
  address: string;
  port: number;
  /** The SRV weight: the instance's weight at its health (Consul's service weights); unset: 1. */
  weight?: number;
}

/**
 * Names and tags arrive lower-cased, because DNS names are case-insensitive: an implementation
 * compares case-insensitively (tags may hold upper case). Both methods are called once per query,
 * on the event loop, so they must be fast and must not block.
 */
export interface DnsCatalog {
  /** Healthy instances (passing or warning) of a service, filtered by tag when given.
   * undefined when no service of that name is known at all (→ NXDOMAIN); [] when known but none is healthy. */
  healthyInstances(service: string, tag: string | undefined): DnsInstance[] | undefined;
  /** A live agent by node name; `address` is an IP literal. undefined when unknown or not alive. */
  node(name: string): { name: string; address: string } | undefined;
}
