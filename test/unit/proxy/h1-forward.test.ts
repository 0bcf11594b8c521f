// What crosses a mesh hop of HTTP/1.1: end-to-end headers only (RFC 9110 §7.6.1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endToEndHeaders } from '../../../src/proxy/h1-forward.js';

describe('endToEndHeaders', () => {
  it('drops every hop-by-hop header and keeps the rest', () => {
    const out = endToEndHeaders({
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      'transfer-encoding': 'chunked',
      te: 'trailers',
      trailer: 'x-checksum',
      upgrade: 'websocket',
      'proxy-authorization': 'Basic eA==',
      'proxy-authenticate': 'Basic',
      host: 'api',
      'content-type': 'application/json',
      'set-cookie': ['a=1', 'b=2'],
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
    assert.deepEqual(out, {
      host: 'api',
      'content-type': 'application/json',
      'set-cookie': ['a=1', 'b=2'],
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
  });

  it('drops the headers the Connection header names, whatever their case and spacing', () => {
    const out = endToEndHeaders({
      connection: 'close,  X-Session-Hop ,x-debug',
      'x-session-hop': '1',
      'x-debug': 'on',
      'x-request-id': 'r1',
    });
    assert.deepEqual(out, { 'x-request-id': 'r1' });
  });

  it('drops the extra names it is given', () => {
    const out = endToEndHeaders({ 'x-mesh-instance': 'api-1', accept: '*/*' }, ['x-mesh-instance']);
    assert.deepEqual(out, { accept: '*/*' });
  });

  it('leaves the input untouched', () => {
    const input = { connection: 'x-a', 'x-a': '1', 'x-b': '2' };
    endToEndHeaders(input);
    assert.deepEqual(input, { connection: 'x-a', 'x-a': '1', 'x-b': '2' });
  });
});
