// `mesh config chain`: a compiled discovery chain read back as text (routes in order, targets with
// their instances, and the reasons when the entries do not compile).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DiscoveryChainView } from '../../../src/api/types.js';
import { codesText, formatChain, matchText } from '../../../src/cli/chain.js';
import { compileChain } from '../../../src/core/routing/chain.js';

const ENTRIES: Record<string, unknown> = {
  'service-router/web': {
    routes: [
      {
        match: {
          http: {
            pathPrefix: '/admin/',
            methods: ['GET', 'POST'],
            header: [{ name: 'x-debug', present: true }],
          },
        },
        destination: { service: 'admin', prefixRewrite: '/', numRetries: 2, retryOn: ['gateway-error'] },
      },
      {
        match: { http: { pathRegex: '/reports/.*' } },
        destination: { requestTimeoutMs: 3000 },
        fault: { delay: { percent: 10, fixedDelayMs: 2000 }, abort: { percent: 1, httpStatus: 503 } },
      },
    ],
  },
  'service-resolver/web': {
    subsets: {
      v1: { filter: { meta: { version: 'v1' } } },
      v2: { filter: { meta: { version: 'v2' } }, onlyPassing: true },
    },
    defaultSubset: 'v1',
    failover: { v2: { targets: [{ serviceSubset: 'v1' }] } },
  },
  'service-splitter/web': {
    splits: [
      { weight: 90, serviceSubset: 'v1' },
      { weight: 10, serviceSubset: 'v2' },
    ],
  },
};

const view = (entries: Record<string, unknown>): DiscoveryChainView => {
  const chain = compileChain((kind, name) => entries[`${kind}/${name}`], 'web', 'http');
  const instances: DiscoveryChainView['instances'] = {};
  for (const t of chain.targets) instances[t.id] = { total: 2, healthy: 1 };
  return { index: 42, chain, instances };
};

describe('mesh config chain output', () => {
  it('lists the routes in the order they are tried, then the targets with their instances', () => {
    const text = formatChain(view(ENTRIES));
    const lines = text.split('\n');
    assert.equal(lines[0], 'Discovery chain of web (http), from the configuration at index 42');
    assert.ok(!text.includes('do not compile'));
    const routes = lines.slice(lines.indexOf('Routes, first match wins:') + 2, lines.indexOf('Targets:') - 1);
    assert.equal(routes.length, 3, text);
    assert.match(
      routes[0] ?? '',
      /^0 +path \/admin\/\*, GET\|POST, header x-debug present +admin +rewrite to \/; 2 retries on 502-504 or connect failure$/,
    );
    assert.match(
      routes[1] ?? '',
      /^1 +path ~ "\/reports\/\.\*" +90% v1\.web, 10% v2\.web +timeout 3000 ms; delay 10% 2000 ms; abort 1% \(503, grpc 14\)$/,
    );
    assert.match(routes[2] ?? '', /^2 +\(default\) +90% v1\.web, 10% v2\.web$/);
    const targets = lines.slice(lines.indexOf('Targets:') + 2);
    assert.deepEqual(
      targets.map((l) => l.split(/ {3,}/)),
      [
        ['admin', 'admin', '-', 'round_robin', '-', '1 of 2 healthy'],
        ['v1.web', 'web', 'version=v1', 'round_robin', '-', '1 of 2 healthy'],
        ['v2.web', 'web', 'version=v2', 'round_robin', 'v1.web', '1 of 2 passing'],
      ],
    );
  });

  it('names the header changes of a route and of a split share', () => {
    const text = formatChain(
      view({
        'service-router/web': {
          routes: [
            {
              match: { http: { pathPrefix: '/api/' } },
              destination: {
                requestHeaders: { set: { 'x-env': 'canary' }, add: { 'x-tag': '1' }, remove: ['x-debug'] },
                responseHeaders: { remove: ['server'] },
              },
            },
          ],
        },
        'service-splitter/web': {
          splits: [
            { weight: 90, service: 'web-v1' },
            { weight: 10, service: 'web-v2', requestHeaders: { set: { 'x-version': 'v2' } } },
          ],
        },
      }),
    );
    assert.match(
      text,
      /^0 +path \/api\/\* +90% web-v1, 10% web-v2 \(request x-version set\) +request headers: x-debug removed, x-env set, x-tag added; response headers: server removed$/m,
    );
  });

  it('says when the entries do not compile, and why', () => {
    const broken = { ...ENTRIES, 'service-splitter/web': { splits: [{ weight: 100, serviceSubset: 'v3' }] } };
    const text = formatChain(view(broken));
    assert.match(
      text,
      /The entries do not compile: every call goes straight to web, with default settings, until they are fixed:\n {2}- .*v3/,
    );
    assert.match(text, /\n0 +\(default\) +web\n/);
  });

  it('shows status codes as runs, nested split weights to two decimals, and a reason per path', () => {
    assert.equal(codesText([]), '');
    assert.equal(codesText([503]), '503');
    assert.equal(codesText([502, 503]), '502,503');
    assert.equal(codesText([429, ...Array.from({ length: 100 }, (_, i) => 500 + i)]), '429,500-599');
    const splits: Record<string, unknown> = {
      'service-splitter/web': {
        splits: [
          { weight: 10, service: 'a' },
          { weight: 90, service: 'b' },
        ],
      },
      'service-splitter/a': {
        splits: [
          { weight: 30, service: 'c' },
          { weight: 70, service: 'd' },
        ],
      },
    };
    assert.match(formatChain(view(splits)), /^0 +\(default\) +3% c, 7% d, 90% b$/m);
    // A splitter reached by a route and by the default route: one reason per path to it.
    const broken = formatChain(
      view({
        'service-router/web': {
          routes: [{ match: { http: { pathPrefix: '/a' } }, destination: { service: 'web' } }],
        },
        'service-splitter/web': { splits: [{ weight: 100, serviceSubset: 'v3' }] },
      }),
    );
    const reasons = broken.match(/^ {2}- .*$/gm) ?? [];
    assert.deepEqual(
      reasons.map((r) => r.replace(/.*used via /, '')),
      [
        'service-router web routes[0] → service-splitter web → service-resolver web',
        'service-splitter web → service-resolver web',
      ],
      broken,
    );
    const fivexx = formatChain(
      view({ 'service-router/web': { routes: [{ destination: { retryOn: ['5xx'] } }] } }),
    );
    assert.match(fivexx, /1 retry on 500-599 or connect failure/);
  });

  it('words every kind of match', () => {
    assert.equal(matchText(undefined), '(default)');
    assert.equal(matchText({}), 'any request');
    assert.equal(
      matchText({
        pathExact: '/x',
        header: [
          { name: 'a', exact: '1' },
          { name: 'b', prefix: 'p', invert: true },
          { name: 'c', suffix: 's' },
          { name: 'd', regex: 'r+' },
          { name: 'e', present: false },
        ],
        queryParam: [{ name: 'q', exact: 'v' }, { name: 'r', regex: '\\d' }, { name: 's' }],
      }),
      'path /x, header a = "1", not header b starts "p", header c ends "s", header d ~ "r+", header e absent, query q = "v", query r ~ "\\\\d", query s present',
    );
  });
});
