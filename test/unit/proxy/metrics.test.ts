// The data plane's request counter and latency histogram, as a Prometheus scraper reads them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { grpcStatusLabel, ProxyMetrics } from '../../../src/proxy/metrics.js';

/** Sample lines of `name` (with labels) → value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(name.length, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

describe('ProxyMetrics', () => {
  it('counts requests by status and renders a cumulative histogram per status with sum and count', async () => {
    const m = new ProxyMetrics();
    const seconds = [0.0002, 0.0005, 0.0007, 0.003, 0.003, 0.2, 30];
    for (const s of seconds) m.request('outbound', 'web', 'api', 200, s);
    m.request('outbound', 'web', 'api', 503, 0.001);
    // Refused before it started: counted, not timed.
    m.request('inbound', 'web', 'api', 403);
    const text = await m.text();
    assert.match(text, /# TYPE mesh_proxy_requests_total counter/);
    assert.match(text, /# TYPE mesh_proxy_request_duration_seconds histogram/);
    const counts = samples(text, 'mesh_proxy_requests_total');
    assert.equal(counts.get('{direction="outbound",source="web",destination="api",code="200"}'), 7);
    assert.equal(counts.get('{direction="outbound",source="web",destination="api",code="503"}'), 1);
    assert.equal(counts.get('{direction="inbound",source="web",destination="api",code="403"}'), 1);
    const lbl = 'direction="outbound",source="web",destination="api",code="200"';
    const b = samples(text, 'mesh_proxy_request_duration_seconds_bucket');
    // le is "less than or equal": 0.0005 itself falls in the 0.0005 bucket.
    assert.equal(b.get(`{${lbl},le="0.0005"}`), 2);
    assert.equal(b.get(`{${lbl},le="0.001"}`), 3);
    assert.equal(b.get(`{${lbl},le="0.005"}`), 5);
    assert.equal(b.get(`{${lbl},le="0.25"}`), 6);
    assert.equal(b.get(`{${lbl},le="10"}`), 6);
    assert.equal(b.get(`{${lbl},le="+Inf"}`), 7);
    assert.equal(samples(text, 'mesh_proxy_request_duration_seconds_count').get(`{${lbl}}`), 7);
    const sum = samples(text, 'mesh_proxy_request_duration_seconds_sum').get(`{${lbl}}`) ?? 0;
    assert.ok(Math.abs(sum - seconds.reduce((a, x) => a + x, 0)) < 1e-9);
    // The 503 has a histogram of its own: a slow error rate is not hidden among fast successes.
    const failed = 'direction="outbound",source="web",destination="api",code="503"';
    assert.equal(b.get(`{${failed},le="0.0005"}`), 0);
    assert.equal(b.get(`{${failed},le="0.001"}`), 1);
    assert.equal(b.get(`{${failed},le="+Inf"}`), 1);
    // The inbound series was never timed: no histogram lines for it.
    assert.equal(
      [...b.keys()].some((k) => k.includes('"inbound"')),
      false,
    );
    // Buckets never decrease.
    const values = [...b].filter(([k]) => k.includes(lbl)).map(([, v]) => v);
    assert.deepEqual(
      values,
      [...values].sort((x, y) => x - y),
    );
  });

  it('counts gRPC calls by grpc-status, and only gRPC calls', async () => {
    const m = new ProxyMetrics();
    m.request('outbound', 'web', 'api', 200, 0.001, '0');
    m.request('outbound', 'web', 'api', 200, 0.001, '0');
    m.request('outbound', 'web', 'api', 200, 0.002, '5');
    m.request('outbound', 'web', 'api', 200, 0.002, '');
    m.request('outbound', 'web', 'api', 200, 0.002, 'not-a-code');
    m.request('inbound', 'web', 'api', 403, undefined, '7');
    m.request('outbound', 'web', 'page', 200, 0.001);
    const text = await m.text();
    assert.match(text, /# TYPE mesh_proxy_grpc_requests_total counter/);
    const g = samples(text, 'mesh_proxy_grpc_requests_total');
    const out = 'direction="outbound",source="web",destination="api"';
    assert.equal(g.get(`{${out},grpc_status="0"}`), 2);
    assert.equal(g.get(`{${out},grpc_status="5"}`), 1);
    assert.equal(g.get(`{${out},grpc_status="none"}`), 1);
    assert.equal(g.get(`{${out},grpc_status="unknown"}`), 1);
    assert.equal(g.get('{direction="inbound",source="web",destination="api",grpc_status="7"}'), 1);
    assert.equal(
      [...g.keys()].some((k) => k.includes('"page"')),
      false,
    );
    // Every call is in the request counter too, by its HTTP status.
    assert.equal(samples(text, 'mesh_proxy_requests_total').get(`{${out},code="200"}`), 5);
  });

  it("keeps grpc_status to gRPC's own codes, whatever a server sends", () => {
    for (let i = 0; i <= 16; i++) assert.equal(grpcStatusLabel(String(i)), String(i));
    for (const v of ['17', '-1', '01', ' 0', '0 ', '1e1', 'OK', '99999999999'])
      assert.equal(grpcStatusLabel(v), 'unknown');
    assert.equal(grpcStatusLabel(''), 'none');
  });

  it('keeps an upstream from multiplying the series: odd codes, and codes past 32, count as "other"', async () => {
    const m = new ProxyMetrics();
    for (const code of [99, 600, 999]) m.request('outbound', 'web', 'api', code, 0.001);
    for (let code = 200; code < 240; code++) m.request('outbound', 'web', 'api', code, 0.001);
    m.request('outbound', 'web', 'api', 200, 0.001);
    const text = await m.text();
    const counts = samples(text, 'mesh_proxy_requests_total');
    const lbl = 'direction="outbound",source="web",destination="api"';
    assert.equal(counts.size, 32);
    // "other" took the first place: 31 real codes (200–230) are kept apart, 231–239 join it.
    assert.equal(counts.get(`{${lbl},code="other"}`), 3 + 9);
    assert.equal(counts.get(`{${lbl},code="200"}`), 2);
    assert.equal(counts.get(`{${lbl},code="230"}`), 1);
    assert.equal(counts.get(`{${lbl},code="231"}`), undefined);
    assert.equal(samples(text, 'mesh_proxy_request_duration_seconds_count').get(`{${lbl},code="other"}`), 12);
  });

  it('escapes label values the exposition format would misread', async () => {
    const m = new ProxyMetrics();
    m.request('outbound', 'a"b', 'c\\d\ne', 200, 0.001);
    const text = await m.text();
    assert.match(text, /source="a\\"b",destination="c\\\\d\\ne"/);
  });
});
