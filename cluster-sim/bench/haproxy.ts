// The established tools the proxy benchmark compares against, configured as in
// ../shared/anchors/http_proxy.sh: HAProxy in HTTP mode with keep-alive to a Node upstream, and a pair
// of HAProxies with mutual TLS between them (the same shape as the mesh path: caller's proxy → mTLS →
// callee's proxy → instance). Certificates come from the mesh's own CA code (P-256 ECDSA, like the
// agents' leaves), so both sides pay for the same kind of handshake and cipher.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceDnsName } from '../../src/ca/spiffe.js';
import { createLeafKeyAndCsr, createRoot, signLeaf } from '../../src/ca/x509.js';

export const have = (cmd: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * wrk and HAProxy are Debian packages. Installs the missing ones when this runs as root with apt-get
 * (as CI does for dig); otherwise says how. Returns whether each is present afterwards.
 */
export function ensureTools(names: readonly string[]): Record<string, boolean> {
  const missing = names.filter((n) => !have(n));
  if (missing.length > 0 && process.getuid?.() === 0 && have('apt-get')) {
    console.log(`installing ${missing.join(', ')} (apt-get)`);
    const sh = `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing.join(' ')}`;
    const r = spawnSync('sh', ['-c', sh], { stdio: 'ignore', timeout: 600_000 });
    if (r.status !== 0) console.log(`apt-get install ${missing.join(' ')} failed (exit ${r.status})`);
  }
  return Object.fromEntries(names.map((n) => [n, have(n)]));
}

const TRUST_DOMAIN = 'bench.mesh';
const HOUR_MS = 3_600_000;

async function leafPem(ca: { certPem: string; keyPem: string }, service: string): Promise<string> {
  const { keyPem, csrPem } = await createLeafKeyAndCsr({ trustDomain: TRUST_DOMAIN, service });
  const leaf = await signLeaf({
    csrPem,
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    trustDomain: TRUST_DOMAIN,
    service,
    nowMs: Date.now(),
    ttlMs: HOUR_MS,
  });
  // HAProxy reads the certificate and its key from one file.
  return leaf.certPem + keyPem;
}

const GLOBAL = `global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse safe
`;

export interface HaproxyPair {
  /** HTTP mode, straight to the upstream (the anchor's `node_haproxy_http`). */
  httpPort: number;
  /** The caller-side HAProxy of the TLS pair. */
  pairPort: number;
  frontPid: number;
  backPid: number;
  stop(): Promise<void>;
}

/**
 * Two HAProxy processes, one thread each: the front serves `httpPort` (plain HTTP → upstream) and
 * `pairPort` (→ mTLS to the back); the back terminates mTLS, verifies the client, and forwards to the
 * upstream. Both are stopped by PID.
 */
export async function startHaproxy(
  dir: string,
  ports: { upstream: number; http: number; pair: number; inner: number },
): Promise<HaproxyPair> {
  const ca = await createRoot({ trustDomain: TRUST_DOMAIN, nowMs: Date.now(), ttlMs: 24 * HOUR_MS });
  const caFile = join(dir, 'ca.pem');
  const serverFile = join(dir, 'server.pem');
  const clientFile = join(dir, 'client.pem');
  writeFileSync(caFile, ca.certPem);
  writeFileSync(serverFile, await leafPem(ca, 'upstream'));
  writeFileSync(clientFile, await leafPem(ca, 'caller'));
  const sni = serviceDnsName(TRUST_DOMAIN, 'upstream');
  const front = `${GLOBAL}
frontend fe_http
  bind 127.0.0.1:${ports.http}
  default_backend be_node
backend be_node
  server s1 127.0.0.1:${ports.upstream}
frontend fe_pair
  bind 127.0.0.1:${ports.pair}
  default_backend be_tls
backend be_tls
  server s1 127.0.0.1:${ports.inner} ssl verify required ca-file ${caFile} crt ${clientFile} sni str(${sni}) verifyhost ${sni}
`;
  const back = `${GLOBAL}
frontend fe_tls
  bind 127.0.0.1:${ports.inner} ssl crt ${serverFile} ca-file ${caFile} verify required
  default_backend be_node
backend be_node
  server s1 127.0.0.1:${ports.upstream}
`;
  writeFileSync(join(dir, 'front.cfg'), front);
  writeFileSync(join(dir, 'back.cfg'), back);
  const procs: ChildProcess[] = [];
  const start = (cfg: string): ChildProcess => {
    const p = spawn('haproxy', ['-db', '-f', join(dir, cfg)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr?.on('data', (d: Buffer) => {
      if (err.length < 4_000) err += d.toString();
    });
    p.on('exit', (code) => {
      if (code !== 0 && code !== null) console.log(`haproxy ${cfg} exited ${code}: ${err.trim()}`);
    });
    procs.push(p);
    return p;
  };
  const b = start('back.cfg');
  const f = start('front.cfg');
  if (b.pid === undefined || f.pid === undefined) throw new Error('haproxy did not start');
  return {
    httpPort: ports.http,
    pairPort: ports.pair,
    frontPid: f.pid,
    backPid: b.pid,
    stop: async () => {
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null || p.signalCode !== null) return resolve();
              p.once('exit', () => resolve());
              p.kill('SIGTERM');
              setTimeout(() => p.kill('SIGKILL'), 3_000).unref();
            }),
        ),
      );
    },
  };
}
