// HTTP(S) check: one request, the status code decides. 2xx passes, 429 warns (the service is up
// but shedding load, as Consul), anything else is critical.
//
// Redirects are not followed, and a 3xx is critical. A check probes one endpoint: following would
// make the health of this instance depend on another URL, possibly another host (a login page that
// answers 200 would make a broken service look healthy), and one timeout would cover several
// requests. Consul follows redirects; the output here names the Location so the operator can point
// the check at the final URL instead.
import http from 'node:http';
import https from 'node:https';
import { abortPhrase, deadline, PROBE_OUTPUT_BYTES_MAX, type ProbeResult, reason } from './probe-common.js';

/** Headers sent unless the check sets them itself (Consul sends the same Accept). */
const DEFAULT_HEADERS: Readonly<Record<string, string>> = {
  'user-agent': 'mesh health check',
  accept: 'text/plain, text/*, */*',
};

export interface HttpCheck {
  url: string;
  method: string;
  headers: Record<string, string>;
  tlsSkipVerify: boolean;
}

export async function httpProbe(
  spec: HttpCheck,
  timeoutMs: number,
  parent: AbortSignal,
): Promise<ProbeResult> {
  const method = (spec.method || 'GET').toUpperCase();
  const prefix = `HTTP ${method} ${spec.url}`;
  let url: URL;
  try {
    url = new URL(spec.url);
  } catch {
    return { status: 'critical', output: `${prefix}: not a valid URL` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return {
      status: 'critical',
      output: `${prefix}: unsupported scheme ${url.protocol} (use http:// or https://)`,
    };
  }
  const d = deadline(timeoutMs, parent);
  try {
    const { code, text, location, body } = await request(url, method, spec, d.signal);
    const shown = `${code}${text ? ` ${text}` : ''}`;
    const out = `Output: ${body}`;
    if (code >= 200 && code <= 299) return { status: 'passing', output: `${prefix}: ${shown} ${out}` };
    if (code === 429) return { status: 'warning', output: `${prefix}: ${shown} ${out}` };
    if (code >= 300 && code <= 399) {
      const where = location ? ` to ${location}` : '';
      return {
        status: 'critical',
        output: `${prefix}: ${shown} (redirect${where} not followed; point the check at the final URL) ${out}`,
      };
    }
    return { status: 'critical', output: `${prefix}: ${shown} ${out}` };
  } catch (err) {
    const why = d.cause();
    return { status: 'critical', output: `${prefix}: ${why ? abortPhrase(why, timeoutMs) : reason(err)}` };
  } finally {
    d.dispose();
  }
}

interface Answer {
  code: number;
  text: string;
  location: string | undefined;
  body: string;
}

function request(url: URL, method: string, spec: HttpCheck, signal: AbortSignal): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const headers: Record<string, string> = {};
    const given = new Set(Object.keys(spec.headers).map((k) => k.toLowerCase()));
    for (const [k, v] of Object.entries(DEFAULT_HEADERS)) if (!given.has(k)) headers[k] = v;
    Object.assign(headers, spec.headers);
    const options: https.RequestOptions = {
      method,
      headers,
      // A fresh connection per probe, closed after it: a check never holds a pooled socket.
      agent: false,
      signal,
    };
    if (url.protocol === 'https:') options.rejectUnauthorized = !spec.tlsSkipVerify;
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = (): void => {
        // Bounded read: stop at PROBE_OUTPUT_BYTES_MAX and close the connection rather than drain.
        res.destroy();
        req.destroy();
        const location = res.headers.location;
        resolve({
          code: res.statusCode ?? 0,
          text: res.statusMessage ?? '',
          location: typeof location === 'string' ? location : undefined,
          body: Buffer.concat(chunks, size).subarray(0, PROBE_OUTPUT_BYTES_MAX).toString('utf8'),
        });
      };
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= PROBE_OUTPUT_BYTES_MAX) finish();
      });
      res.on('end', finish);
      // The status is known; a body cut short by the server does not change the verdict.
      res.on('error', finish);
      res.on('aborted', finish);
      res.on('close', finish);
    });
    req.on('error', reject);
    req.end();
  });
}
