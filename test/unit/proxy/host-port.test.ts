// The HTTP proxy port's choice of service: by the Host header, or by the authority of an
// absolute-form target (what a client that honours HTTP_PROXY sends), forwarded in origin form.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { connectTarget, hostTarget } from '../../../src/proxy/host-port.js';

describe('the HTTP proxy port: which service a request names', () => {
  it('reads the Host header of an origin-form request, without case, port, userinfo or trailing dot', () => {
    assert.deepEqual(hostTarget('GET', '/a?b=c', 'api'), { service: 'api', target: '/a?b=c' });
    assert.deepEqual(hostTarget('GET', '/', 'API.:8080'), { service: 'api', target: '/' });
    assert.deepEqual(hostTarget('OPTIONS', '*', 'api'), { service: 'api', target: '*' });
  });

  it('takes an absolute-form target over the Host header and forwards its path and query', () => {
    // The Host sent on is the URL's (RFC 9112 §3.2.2), without userinfo.
    assert.deepEqual(hostTarget('GET', 'http://api/users?id=1', 'other'), {
      service: 'api',
      target: '/users?id=1',
      host: 'api',
    });
    assert.deepEqual(hostTarget('GET', 'HTTP://user:pw@Api:80', undefined), {
      service: 'api',
      target: '/',
      host: 'Api:80',
    });
    assert.deepEqual(hostTarget('GET', 'http://api?x=1', 'api'), {
      service: 'api',
      target: '/?x=1',
      host: 'api',
    });
  });

  it('reads the service a CONNECT names from its host:port target, with or without a Host', () => {
    for (const host of [undefined, '', 'greeter:50051', 'GREETER.:50051', 'greeter', 'greeter:'])
      assert.deepEqual(hostTarget('CONNECT', 'greeter:50051', host), {
        service: 'greeter',
        target: 'greeter:50051',
      });
    assert.deepEqual(connectTarget('Greeter.:443'), { service: 'greeter', target: 'Greeter.:443' });
    const refused = (t: ReturnType<typeof hostTarget>): number => ('status' in t ? t.status : 0);
    // Authority form only (RFC 9110 §9.3.6): a port, no path, userinfo or scheme.
    for (const target of [
      'greeter',
      'greeter:',
      'greeter:443/x',
      'u@greeter:443',
      'http://greeter:443',
      ':443',
      '',
      'greeter:123456',
    ])
      assert.equal(refused(connectTarget(target)), 400, target);
    for (const target of ['127.0.0.1:443', 'api.internal:80', '-api:1', 'a_b:1'])
      assert.equal(refused(connectTarget(target)), 404, target);
  });

  it('refuses a CONNECT whose Host names another authority than its target, saying so', () => {
    for (const host of [
      'other',
      'other:50051',
      'greeter:443',
      'greeter.internal:50051',
      'u@greeter',
      '[::1]:50051',
    ]) {
      const t = hostTarget('CONNECT', 'greeter:50051', host);
      assert.ok('status' in t, host);
      assert.equal(t.status, 400, host);
      assert.match(
        t.message,
        /the Host header ".*" names another authority than the CONNECT target "greeter:50051"/,
      );
    }
    // A target that is no host:port is refused for that, whatever the Host.
    const bad = hostTarget('CONNECT', 'greeter', 'greeter');
    assert.ok('status' in bad && /CONNECT takes a service name and a port/.test(bad.message));
  });

  it('refuses what names no service: other schemes 400, no Host 400, a non-name 404', () => {
    const refused = (t: ReturnType<typeof hostTarget>): number => ('status' in t ? t.status : 0);
    assert.equal(refused(hostTarget('GET', 'https://api/', 'api')), 400);
    assert.equal(refused(hostTarget('GET', '/', undefined)), 400);
    assert.equal(refused(hostTarget('GET', '/', '')), 400);
    for (const host of ['127.0.0.1:9000', '[::1]:80', 'api.internal', '-api', 'a_b'])
      assert.equal(refused(hostTarget('GET', '/', host)), 404, host);
  });

  it('any path and query behind http://NAME reach the instance unchanged', () => {
    const name = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
    const rest = fc.stringMatching(
      /^(\/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?(\?[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$/,
    );
    fc.assert(
      fc.property(name, fc.option(fc.integer({ min: 1, max: 65535 })), rest, (n, port, r) => {
        const t = hostTarget('GET', `http://${n}${port === null ? '' : `:${port}`}${r}`, 'ignored');
        const want = r === '' ? '/' : r.startsWith('?') ? `/${r}` : r;
        assert.deepEqual(t, { service: n, target: want, host: port === null ? n : `${n}:${port}` });
      }),
    );
  });
});
