// Defaults and bounds of the DNS server, each with the reason for its value.

export const DNS_DEFAULTS = Object.freeze({
  /** Names are NAME.service.mesh, NODE.node.mesh; `mesh` is short and not a public top-level domain. */
  domain: 'mesh',
  /**
   * TTL of every record, and the negative-caching TTL (the SOA minimum). Health changes within
   * seconds, so a resolver must not hold an answer longer than that; 0 would defeat caching in a
   * busy client entirely, and 5 s keeps a dead instance in caches for at most 5 s.
   */
  ttlSec: 5,
});

export const dnsLimits = Object.freeze({
  /**
   * Largest query we decode, over UDP and TCP. A query is one name (at most 255 bytes) plus an
   * optional EDNS record; with a cookie, client-subnet and RFC 8467 padding to a 128-byte block it
   * still stays under 512 bytes, the classic DNS message size. Anything larger is not a query we
   * can answer: FORMERR over UDP, the connection closed over TCP.
   */
  queryBytesMax: 512,
  /** UDP answer size for a client that sent no EDNS record (RFC 1035). */
  udpResponseBytesClassic: 512,
  /**
   * UDP answer size ceiling whatever the client advertises, and the size we advertise. 1232 bytes
   * fits a 1280-byte IPv6 minimum MTU without fragmentation (DNS Flag Day 2020); bigger answers go
   * over TCP, where nothing is lost.
   */
  udpResponseBytesMax: 1232,
  /** TCP messages carry a 2-byte length, so this is the protocol's own ceiling. */
  tcpResponseBytesMax: 65_535,
  /**
   * Records in one answer section. 128 A records are about 4 KiB; a client that needs every one of
   * hundreds of instances is better served by the HTTP API, and the bound caps the work per query.
   */
  answersMax: 128,
  /** Open TCP connections; one more is closed at once. Stub resolvers use TCP only after a TC answer. */
  tcpConnectionsMax: 128,
  /** A TCP connection with no traffic for this long is closed (RFC 7766 asks for seconds, not minutes). */
  tcpIdleTimeoutMs: 10_000,
  /**
   * Answers written to a TCP connection but not yet taken by the client. A client that pipelines
   * queries and never reads would otherwise grow our buffer without end; past this it is cut off.
   * Inbound bytes need no bound of their own: a partial message is at most 2 + queryBytesMax.
   */
  tcpPendingBytesMax: 256 * 1024,
  /** With port 0, TCP must take the port UDP got; another process may win it, so we retry this often. */
  bindAttemptsMax: 5,
  /** At most one log line per this interval for malformed packets (and, apart, for our own faults), so a flood cannot fill the log. */
  noisyLogIntervalMs: 10_000,
});
