// The HTTP/1.1 relay's codec: heads parse back to what was written, bodies end exactly where their
// framing says (whatever the read boundaries), and anything that could let two parties disagree on
// where a message ends is refused. Property tests for the grammar, examples for the refusals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BodyFramer, requestBody, responseBody } from '../../../src/proxy/h1/body.js';
import { allOf, CHARS, forwardBlock } from '../../../src/proxy/h1/fields.js';
import {
  H1_LIMITS,
  type HeadResult,
  headerValue,
  linesBlock,
  parseHead,
  writeHead,
} from '../../../src/proxy/h1/head.js';

const token = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9-]{0,15}$/);
const value = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?$/);
const path = fc.stringMatching(/^\/[a-zA-Z0-9/._~%-]{0,40}$/);
const headerList = fc.array(
  fc
    .tuple(token, value)
    .filter(([n]) => !['content-length', 'transfer-encoding', 'host'].includes(n.toLowerCase())),
  { maxLength: 12 },
);

const req = (text: string): HeadResult => parseHead(Buffer.from(text, 'latin1'), 0, 'request');
const res = (text: string): HeadResult => parseHead(Buffer.from(text, 'latin1'), 0, 'response');
const refused = (r: HeadResult, status: number): void => {
  assert.equal(r.kind, 'error', JSON.stringify(r));
  if (r.kind === 'error') assert.equal(r.status, status, r.message);
};

/** Feeds `bytes` to a framer in pieces cut at `cuts`; the total it claimed, and whether it ended. */
function frame(
  f: BodyFramer,
  bytes: Buffer,
  cuts: number[],
): { used: number; done: boolean; error?: string } {
  let used = 0;
  let at = 0;
  for (const end of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    if (end <= at) continue;
    const step = f.push(bytes.subarray(at, end));
    if ('error' in step) return { used, done: false, error: step.error };
    used += step.used;
    if (step.done) return { used, done: true };
    at = end;
  }
  return { used, done: f.done };
}

function chunked(parts: Buffer[], ext: boolean, trailers: Array<[string, string]>): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (p.length === 0) continue;
    out.push(Buffer.from(`${p.length.toString(16)}${ext ? ';name=v' : ''}\r\n`), p, Buffer.from('\r\n'));
  }
  out.push(Buffer.from(`0\r\n${trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`));
  return Buffer.concat(out);
}

describe('HTTP/1.1 heads', () => {
  it('a written request head parses back to the same method, target, headers and size, and is partial before its end', () => {
    fc.assert(
      fc.property(token, path, headerList, fc.nat(200), (method, target, headers, cut) => {
        const all: Array<[string, string]> = [['Host', 'api.example:8080'], ...headers];
        const text = writeHead(
          `${method.toUpperCase()} ${target} HTTP/1.1`,
          linesBlock(all.map(([n, v]) => `${n}: ${v}`)),
        );
        const bytes = Buffer.from(`${text}next`, 'latin1');
        const r = parseHead(bytes, 0, 'request');
        assert.equal(r.kind, 'head');
        if (r.kind !== 'head') return;
        assert.equal(r.size, text.length);
        assert.equal(r.head.method, method.toUpperCase());
        assert.equal(r.head.target, target);
        assert.deepEqual(
          r.head.names.map((n, i) => [n, r.head.values[i]]),
          all,
        );
        const prefix = Math.min(cut, text.length - 1);
        assert.equal(parseHead(bytes.subarray(0, prefix), 0, 'request').kind, 'partial');
      }),
    );
  });

  it('reads nothing past its limit: a reused read buffer parses as the read alone would', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.boolean(),
        (read, stale, isReq) => {
          const type = isReq ? 'request' : 'response';
          // What an earlier, longer read left behind: often the end of a head.
          const buf = Buffer.concat([Buffer.from(read), Buffer.from('\r\n\r\n'), Buffer.from(stale)]);
          buf.set(read, 0);
          const alone = parseHead(Buffer.from(read), 0, type);
          assert.deepEqual(parseHead(buf, 0, type, read.length), alone);
        },
      ),
    );
    const lines = Buffer.from('\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n', 'latin1');
    assert.equal(parseHead(lines, 0, 'request', 1).kind, 'partial');
    assert.equal(parseHead(lines, 0, 'request', lines.length - 1).kind, 'partial');
    assert.equal(parseHead(lines, 0, 'request', lines.length).kind, 'head');
  });

  it('accepts exactly the header blocks of the grammar: a token, a colon, a value free of controls, per line', () => {
    const grammar = /^(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*$/;
    const piece = fc.constantFrom(
      '\r\n',
      '\r',
      '\n',
      ':',
      ' ',
      '\t',
      'x',
      'Y',
      '-',
      '\x00',
      '\x7f',
      '\xa0',
      '"',
      '~',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
        const block = `\r\n${pieces.join('')}`;
        const text = `GET / HTTP/1.1\r\nHost: a${block}\r\n\r\n`;
        // CR LF CR LF before the end ends the head there: only whole blocks are compared.
        if (text.indexOf('\r\n\r\n') !== text.length - 4) return;
        const r = req(text);
        if (grammar.test(block)) assert.equal(r.kind, 'head', JSON.stringify(block));
        else refused(r, 400);
      }),
      { numRuns: 2_000 },
    );
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, isReq) => {
        const b = Buffer.concat([Buffer.from(bytes), Buffer.from('\r\n\r\n')]);
        const r = parseHead(b, 0, isReq ? 'request' : 'response');
        // Partial only when the blank line was eaten as leading empty lines before a request.
        assert.ok(r.kind === 'head' || r.kind === 'error' || (isReq && r.kind === 'partial'));
      }),
    );
  });

  it('refuses what could let two parties disagree about where a message ends', () => {
    refused(req('POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n'), 400);
    refused(req('POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n'), 400);
    refused(req('POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n'), 400);
    refused(req('POST / HTTP/1.1\r\ntransfer-encoding: chunked, gzip\r\n\r\n'), 400);
    refused(req('POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n'), 501);
    refused(req('POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n'), 400);
    // Forwarding drops what Connection names: the next hop would frame the body otherwise.
    refused(
      req(
        'POST / HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n',
      ),
      400,
    );
    refused(
      req(
        'POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\nContent-Length: 3\r\n\r\n',
      ),
      400,
    );
    refused(req('GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n'), 400);
    refused(res('HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\n'), 502);
    refused(req('GET / HTTP/1.1\r\nhost : a\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nx-a: 1\r\n folded\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nx-a: 1\nx-b: 2\r\n\r\n'), 400);
    // Lines ended by a bare LF never show CRLF CRLF: refused at once, not waited on.
    refused(req('GET / HTTP/1.1\nhost: x\n\n'), 400);
    refused(req('GET / HTTP/1.1\r\nhost: x\n'), 400);
    refused(req('\nGET / HTTP/1.1\r\n'), 400);
    refused(res('HTTP/1.1 200 OK\ncontent-length: 0\n\n'), 502);
    assert.equal(req('GET / HTTP/1.1\r\nhost: x\r').kind, 'partial');
    assert.equal(req('GET / HTTP/1.1\r\nhost: x\r\n').kind, 'partial');
    refused(req('GET / HTTP/2.0\r\n\r\n'), 505);
    refused(req('GET  / HTTP/1.1\r\n\r\n'), 400);
    refused(res('HTTP/1.1 2000 OK\r\n\r\n'), 502);
    const long = `GET / HTTP/1.1\r\nx: ${'a'.repeat(H1_LIMITS.headBytesMax)}\r\n\r\n`;
    refused(req(long), 431);
    refused(req(long.slice(0, -4)), 431);
  });

  it('refuses an HTTP/1.1 request but a CONNECT without exactly one Host that names a host (RFC 9112 §3.2)', () => {
    refused(req('GET / HTTP/1.1\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nx-host: a\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nHost: a\r\nHOST: a\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nHost: a b\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nHost: a/b\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nHost: user@a\r\n\r\n'), 400);
    // OWS is spaces and tabs: a no-break space is part of the value, which is then no host.
    refused(req('GET / HTTP/1.1\r\nHost: api\xa0\r\n\r\n'), 400);
    refused(req('GET / HTTP/1.1\r\nHost: \xa0evil.example\r\n\r\n'), 400);
    refused(req('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\xa0\r\n\r\n'), 400);
    const tabbed = req('GET / HTTP/1.1\r\nHost:\t api \t\r\nX-A: \xa0v\xa0 \r\n\r\n');
    assert.equal(tabbed.kind === 'head' && headerValue(tabbed.head, 'host'), 'api');
    assert.equal(tabbed.kind === 'head' && headerValue(tabbed.head, 'x-a'), '\xa0v\xa0');
    assert.deepEqual(tabbed.kind === 'head' && tabbed.head.values, ['api', '\xa0v\xa0']);
    for (const ok of [
      'api',
      'api.example:8080',
      '10.0.0.5:7400',
      '[::1]:9191',
      'xn--bcher-kva.example',
      '',
    ]) {
      const r = req(`GET / HTTP/1.1\r\nHost: ${ok}\r\n\r\n`);
      assert.equal(r.kind, 'head', ok);
    }
    assert.equal(req('GET / HTTP/1.0\r\n\r\n').kind, 'head');
    // A CONNECT's authority is its target (RFC 9110 §9.3.6): it needs no Host, but one Host at most.
    assert.equal(req('CONNECT greeter:50051 HTTP/1.1\r\n\r\n').kind, 'head');
    refused(req('CONNECT greeter:50051 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n'), 400);
    // A response has no Host to check.
    assert.equal(res('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n').kind, 'head');
  });

  it('forwards every line but the hop-by-hop ones, those the Connection header names, and those dropped', () => {
    const hop = ['Connection', 'Keep-Alive', 'Proxy-Connection', 'TE', 'Upgrade', 'Proxy-Authorization'];
    const special = ['traceparent', 'X-Mesh-Instance', 'x-mesh-instance', 'Close', 'X-Custom'];
    const name = fc.oneof(
      token.filter((n) => !['content-length', 'transfer-encoding', 'host'].includes(n.toLowerCase())),
      fc.constantFrom(...hop, ...special),
      fc.constantFrom(...hop).map((n) => n.toUpperCase()),
    );
    const connection = fc.constantFrom(
      'keep-alive',
      'close',
      'upgrade',
      'x-custom',
      'Keep-Alive, x-custom',
      'te',
    );
    const drops: ReadonlySet<string>[] = [
      new Set(),
      new Set(['traceparent', 'x-mesh-instance']),
      new Set(['x-mesh-instance']),
      new Set(['x-custom']),
    ];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, value), { maxLength: 10 }),
        fc.array(connection, { maxLength: 2 }),
        fc.constantFrom(...drops),
        (headers, conns, drop) => {
          const all: Array<[string, string]> = [
            ['Host', 'a'],
            ...headers.filter(([n]) => n.toLowerCase() !== 'connection'),
          ];
          for (const c of conns) all.push(['Connection', c]);
          const r = req(writeHead('GET / HTTP/1.1', linesBlock(all.map(([n, v]) => `${n}: ${v}`))));
          assert.equal(r.kind, 'head');
          if (r.kind !== 'head') return;
          const named = conns.flatMap((c) => c.split(',').map((t) => t.trim().toLowerCase()));
          const hopNames = new Set([...hop.map((n) => n.toLowerCase()), 'proxy-authenticate']);
          const want = all.filter(([n]) => {
            const l = n.toLowerCase();
            return !(hopNames.has(l) || named.includes(l) || drop.has(l));
          });
          assert.equal(forwardBlock(r.head, drop), linesBlock(want.map(([n, v]) => `${n}: ${v}`)));
        },
      ),
    );
  });

  it('accepts repeated equal Content-Lengths (forwarded as one) and reads framing, keep-alive and upgrade', () => {
    const r = req('PUT /x HTTP/1.0\r\nContent-Length: 3\r\nx-a: 1\r\ncontent-length: 3\r\n\r\n');
    assert.equal(r.kind === 'head' && r.head.contentLength, 3);
    assert.equal(r.kind === 'head' && forwardBlock(r.head, new Set()), '\r\nx-a: 1\r\ncontent-length: 3');
    const list = req('PUT /x HTTP/1.0\r\nContent-Length: 3, 3\r\n\r\n');
    assert.equal(list.kind === 'head' && list.head.block, '\r\ncontent-length: 3');
    const h10 = req('GET / HTTP/1.0\r\n\r\n');
    assert.equal(h10.kind === 'head' && h10.head.close, true);
    const ka = req('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    assert.equal(ka.kind === 'head' && ka.head.close, false);
    const up = req('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    assert.equal(up.kind === 'head' && up.head.upgrade, true);
    const lead = req('\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(lead.kind === 'head' && lead.head.method, 'GET');
  });

  it('reads a status line exactly as RFC 9112 §4 writes it: HTTP/1.x, three digits, an optional reason', () => {
    const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
    const ch = fc.constantFrom('H', 'T', 'P', '/', '1', '.', '0', '2', '9', ' ', 'O', 'K', '\t', '\x7f', 'é');
    const near = fc.tuple(
      fc.constantFrom('HTTP/1.1 ', 'HTTP/1.0 ', 'HTTP/1.2 ', 'HTTP/1.1', 'http/1.1 '),
      fc.array(ch, { maxLength: 8 }),
    );
    fc.assert(
      fc.property(near, ([prefix, rest]) => {
        const line = prefix + rest.join('');
        const r = parseHead(Buffer.from(`${line}\r\ncontent-length: 0\r\n\r\n`, 'latin1'), 0, 'response');
        const m = STATUS_LINE.exec(line);
        assert.equal(r.kind === 'head', m !== null, line);
        if (r.kind === 'head' && m) {
          assert.equal(r.head.minor, Number(m[1]));
          assert.equal(r.head.status, Number(m[2]));
          assert.equal(r.head.reason, m[3] ?? '');
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('reads the tokens of every Connection header, however they are spelled and split', () => {
    const tok = fc.constantFrom('keep-alive', 'Keep-Alive', 'close', 'CLOSE', 'upgrade', 'x-hop');
    const header = fc.array(tok, { minLength: 1, maxLength: 3 }).map((ts) => ts.join(', '));
    fc.assert(
      fc.property(fc.array(header, { minLength: 1, maxLength: 3 }), (values) => {
        const block = values.map((v) => `\r\nConnection: ${v}`).join('');
        const r = req(`GET / HTTP/1.1\r\nHost: a${block}\r\n\r\n`);
        const want = values.flatMap((v) => v.split(',').map((t) => t.trim().toLowerCase()));
        assert.equal(r.kind, 'head');
        if (r.kind !== 'head') return;
        assert.deepEqual([...r.head.connection], want);
        assert.equal(r.head.close, want.includes('close'));
      }),
    );
  });

  it('knows which responses have no body, and which run to the end of the connection', () => {
    const h = (text: string) => {
      const r = res(text);
      assert.equal(r.kind, 'head');
      return (r as { head: Parameters<typeof responseBody>[0] }).head;
    };
    assert.deepEqual(responseBody(h('HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n'), 'HEAD'), {
      kind: 'none',
    });
    assert.deepEqual(responseBody(h('HTTP/1.1 204 No Content\r\n\r\n'), 'GET'), { kind: 'none' });
    assert.deepEqual(responseBody(h('HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n'), 'GET'), {
      kind: 'none',
    });
    assert.deepEqual(responseBody(h('HTTP/1.1 200 OK\r\n\r\n'), 'GET'), { kind: 'close' });
    assert.deepEqual(responseBody(h('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'), 'GET'), {
      kind: 'chunked',
    });
    const r = req('GET / HTTP/1.1\r\nhost: a\r\n\r\n');
    assert.deepEqual(r.kind === 'head' && requestBody(r.head), { kind: 'none' });
  });

  it('accepts a header block exactly when every line is a token, a colon and a field value', () => {
    // Few characters, so controls, colons and whitespace land in names and values often.
    const ch = fc.constantFrom(
      'a',
      'B',
      '-',
      ':',
      ' ',
      '\t',
      '\x0b',
      '\x7f',
      '\xa0',
      '\xe9',
      '\r',
      '\n',
      '\x00',
    );
    const line = fc.array(ch, { maxLength: 12 }).map((cs) => cs.join(''));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
        const block = lines.map((l) => `\r\n${l}`).join('');
        // A blank line ends the head: what follows it is not this head's block.
        fc.pre(!`${block}\r\n`.includes('\r\n\r\n'));
        const wellFormed = block
          .split('\r\n')
          .slice(1)
          .every((l) => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/.test(l));
        // HTTP/1.0, which needs no Host: these names never spell one.
        const r = req(`GET / HTTP/1.0${block}\r\n\r\n`);
        assert.equal(r.kind === 'head', wellFormed, JSON.stringify(block));
      }),
      { numRuns: 2_000 },
    );
  });

  it('forwards the same headers by pattern as line by line, and finds values as the arrays do', () => {
    const hop = [
      'Connection',
      'Keep-Alive',
      'TE',
      'Trailer',
      'Upgrade',
      'Proxy-Connection',
      'X-Drop',
      'X-Hop',
    ];
    const name = fc.oneof(token, fc.constantFrom(...hop));
    const conn = fc.subarray(['keep-alive', 'close', 'x-hop', 'upgrade', 'te'], { minLength: 0 });
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 10 }), conn, (headers, tokens) => {
        const lines: Array<[string, string]> = [
          ['Host', 'api'],
          ...headers.filter(
            ([n]) => !['connection', 'content-length', 'transfer-encoding', 'host'].includes(n.toLowerCase()),
          ),
        ];
        if (tokens.length > 0) lines.push(['Connection', tokens.join(', ')]);
        const r = req(`GET / HTTP/1.1${linesBlock(lines.map(([n, v]) => `${n}: ${v}`))}\r\n\r\n`);
        assert.equal(r.kind, 'head');
        if (r.kind !== 'head') return;
        const drop = new Set(['x-drop']);
        const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade'];
        const expected = lines
          .filter(([n]) => {
            const l = n.toLowerCase();
            return !hopByHop.includes(l) && !drop.has(l) && !tokens.includes(l);
          })
          .map(([n, v]) => `\r\n${n}: ${v}`)
          .join('');
        assert.equal(forwardBlock(r.head, drop), expected);
        for (const [n] of lines) {
          const l = n.toLowerCase();
          assert.equal(headerValue(r.head, l), r.head.values[r.head.lower.indexOf(l)]);
        }
        assert.equal(headerValue(r.head, 'x-absent'), undefined);
      }),
      { numRuns: 1_000 },
    );
  });

  it('forwards end-to-end headers only, keeping Upgrade when asked', () => {
    const r = req(
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: 5\r\nX-Hop: 1\r\nTE: trailers\r\nX-Mesh-Instance: i\r\nUpgrade: websocket\r\nAccept: */*\r\n\r\n',
    );
    assert.equal(r.kind, 'head');
    if (r.kind !== 'head') return;
    assert.equal(forwardBlock(r.head, new Set(['x-mesh-instance'])), '\r\nHost: a\r\nAccept: */*');
    assert.equal(
      forwardBlock(r.head, new Set(), true),
      '\r\nHost: a\r\nX-Mesh-Instance: i\r\nUpgrade: websocket\r\nAccept: */*\r\nConnection: upgrade',
    );
  });

  it('checks characters by the same classes as the grammar patterns', () => {
    const classes: ReadonlyArray<readonly [number, RegExp, number]> = [
      [CHARS.token, /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 1],
      [CHARS.value, /^[\t\x20-\x7e\x80-\xff]*$/, 0],
      [CHARS.target, /^[\x21-\x7e\x80-\xff]+$/, 1],
      [CHARS.host, /^[A-Za-z0-9\-._~%!$&'()*+,;=:[\]]*$/, 0],
      [CHARS.digit, /^[0-9]+$/, 1],
    ];
    for (const [bit, pattern, min] of classes) {
      assert.equal(allOf('', bit, min), min === 0);
      for (let c = 0; c < 0x102; c++) {
        const s = String.fromCharCode(c);
        assert.equal(allOf(s, bit, min), pattern.test(s), `class ${bit}, character ${c}`);
      }
      fc.assert(
        fc.property(
          fc.string({ unit: 'binary', maxLength: 12 }),
          (s) => allOf(s, bit, min) === pattern.test(s),
        ),
        { numRuns: 500 },
      );
    }
  });
});

describe('HTTP/1.1 body framing', () => {
  it('a chunked body ends exactly at its last CRLF, however the reads are cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }),
        fc.boolean(),
        fc.array(fc.tuple(token, value), { maxLength: 3 }),
        fc.array(fc.nat(2_000), { maxLength: 8 }),
        (parts, ext, trailers, cuts) => {
          const body = chunked(
            parts.map((p) => Buffer.from(p)),
            ext,
            trailers,
          );
          const withNext = Buffer.concat([body, Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
          const r = frame(new BodyFramer({ kind: 'chunked' }), withNext, cuts);
          assert.deepEqual(r, { used: body.length, done: true });
        },
      ),
    );
  });

  it('a sized body ends after its length', () => {
    fc.assert(
      fc.property(
        fc.nat(5_000),
        fc.nat(100),
        fc.array(fc.nat(6_000), { maxLength: 6 }),
        (len, extra, cuts) => {
          const bytes = Buffer.alloc(len + extra, 7);
          const r = frame(new BodyFramer({ kind: 'length', length: len }), bytes, cuts);
          assert.deepEqual(r, len === 0 ? { used: 0, done: true } : { used: len, done: true });
        },
      ),
    );
  });

  it('refuses malformed chunk framing without throwing', () => {
    const bad = [
      'zz\r\nab\r\n0\r\n\r\n',
      '2\r\nabc\r\n0\r\n\r\n',
      '2\nab\r\n0\r\n\r\n',
      `${'f'.repeat(13)}\r\n`,
      '\r\n',
      // A size read differently by a back end that stops at the space, or joins the digits.
      '3 4\r\nabc\r\n0\r\n\r\n',
      '3\t4\r\nabc\r\n0\r\n\r\n',
      '3;a=\x01\r\nabc\r\n0\r\n\r\n',
    ];
    // Whitespace before an extension, and extensions, are allowed.
    for (const ok of ['3 ;a=1\r\nabc\r\n0\r\n\r\n', '3\t; a = "b c"\r\nabc\r\n0 \r\n\r\n']) {
      const r = frame(new BodyFramer({ kind: 'chunked' }), Buffer.from(ok), []);
      assert.deepEqual(r, { used: ok.length, done: true }, JSON.stringify(ok));
    }
    for (const b of bad) {
      const r = frame(new BodyFramer({ kind: 'chunked' }), Buffer.from(b), []);
      assert.ok(r.error, `${JSON.stringify(b)} → ${JSON.stringify(r)}`);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = frame(new BodyFramer({ kind: 'chunked' }), Buffer.from(bytes), []);
        assert.ok(r.used <= bytes.length);
      }),
    );
  });
});
