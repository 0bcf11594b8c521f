import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sample } from '../../../src/dns/answer.js';
import {
  addrLabel,
  hostName,
  isEchoableName,
  normalizeDomain,
  parseAddrLabel,
  parseIp,
  parseQueryName,
} from '../../../src/dns/names.js';

describe('DNS names', () => {
  it('parses the forms an operator types', () => {
    const cases: Array<[string, unknown]> = [
      ['mesh', { kind: 'apex' }],
      ['MESH.', { kind: 'apex' }],
      ['web.service.mesh', { kind: 'service', service: 'web', tag: undefined }],
      ['Web.Service.Mesh.', { kind: 'service', service: 'web', tag: undefined }],
      ['v1.web.service.mesh', { kind: 'service', service: 'web', tag: 'v1' }],
      ['_web._v1.service.mesh', { kind: 'service', service: 'web', tag: 'v1' }],
      ['_web._tcp.service.mesh', { kind: 'service', service: 'web', tag: undefined }],
      ['_tcp.service.mesh', { kind: 'empty' }],
      ['service.mesh', { kind: 'empty' }],
      ['node.mesh', { kind: 'empty' }],
      ['node-a.node.mesh', { kind: 'node', node: 'node-a' }],
      ['host.example.com.node.mesh', { kind: 'node', node: 'host.example.com' }],
      ['a.b.web.service.mesh', { kind: 'nxdomain' }],
      ['foo.bar.mesh', { kind: 'nxdomain' }],
      ['xyz.addr.mesh', { kind: 'nxdomain' }],
      ['example.com', { kind: 'outside' }],
      ['notmesh', { kind: 'outside' }],
      ['.', { kind: 'outside' }],
    ];
    for (const [name, expected] of cases) assert.deepEqual(parseQueryName(name, 'mesh'), expected, name);
  });

  it('.addr. labels round-trip IPv4 and IPv6 as Consul writes them', () => {
    const v4 = parseIp('10.0.0.1')!;
    assert.equal(addrLabel(v4), '0a000001');
    assert.equal(parseAddrLabel('0A000001')?.text, '10.0.0.1');
    const v6 = parseIp('2001:db8::1')!;
    assert.equal(addrLabel(v6), '20010db8000000000000000000000001');
    assert.deepEqual(parseAddrLabel(addrLabel(v6))?.bytes, v6.bytes);
    assert.equal(addrLabel(parseIp('::ffff:10.0.0.1')!), '00000000000000000000ffff0a000001');
    assert.equal(addrLabel(parseIp('::')!), '0'.repeat(32));
    assert.equal(addrLabel(parseIp('fe80::1%eth0')!), 'fe800000000000000000000000000001');
    assert.equal(parseAddrLabel('0a00001'), undefined);
    assert.equal(parseAddrLabel('zz000001'), undefined);
    assert.equal(parseIp('db.example.com'), undefined);
  });

  it('host names and domains are checked before they go on the wire', () => {
    assert.equal(hostName('DB1.Example.com.'), 'db1.example.com');
    assert.equal(hostName('has space.example.com'), undefined);
    assert.equal(hostName(`${'a'.repeat(64)}.com`), undefined);
    assert.equal(normalizeDomain('.Mesh.'), 'mesh');
    assert.throws(() => normalizeDomain('bad domain'), /DNS domain/);
    assert.equal(isEchoableName('web.service.mesh'), true);
    assert.equal(isEchoableName('w\u00e9b.service.mesh'), false);
  });

  it('sample: a bounded random permutation, driven by the given random source', () => {
    assert.deepEqual(
      sample([1, 2, 3, 4], 4, () => 0),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      sample([1, 2, 3, 4], 2, () => 0.999),
      [4, 1],
    );
    assert.deepEqual(
      sample([1, 2, 3], 10, () => 1),
      [3, 1, 2],
      'a random() of 1 stays in range',
    );
    const items = Array.from({ length: 500 }, (_, i) => i);
    const picked = sample(items, 128, Math.random);
    assert.equal(picked.length, 128);
    assert.equal(new Set(picked).size, 128);
  });
});
