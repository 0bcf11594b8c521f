// A fake AgentApi for HTTP API, client and CLI tests: fixed members, scripted join outcomes.
import type { AgentApi, AgentSelfView, JoinResult, MemberView } from '../../src/api/types.js';
import { MeshError } from '../../src/api/types.js';

export function member(name: string, status: MemberView['status'], zone = ''): MemberView {
  return {
    name,
    id: `id-${name}`,
    address: `10.0.0.${name.length}:7400`,
    status,
    incarnation: 1,
    zone,
    meta: {},
  };
}

export class FakeAgent implements AgentApi {
  joins: string[][] = [];
  leaves = 0;
  list: MemberView[] = [
    member('zeta', 'alive', 'eu-1'),
    member('alpha', 'alive'),
    member('mid', 'failed', 'eu-2'),
  ];

  self(): AgentSelfView {
    return {
      name: 'alpha',
      id: 'id-alpha',
      address: '10.0.0.5:7400',
      multiaddrs: ['/ip4/10.0.0.5/tcp/7400/p2p/id-alpha'],
      http: '127.0.0.1:7500',
      dns: 'off',
      zone: '',
      status: 'alive',
      incarnation: 1,
      version: '0.1.0',
      dataDir: '/var/lib/mesh',
      localHealth: 0,
      members: { alive: 2, suspect: 0, failed: 1, left: 0 },
      stats: { probesSent: 3 },
      memory: { rss: 80 * 1024 * 1024, heapUsed: 20 * 1024 * 1024 },
      connections: 2,
      startedAt: '2026-01-01T00:00:00.000Z',
    };
  }

  members(): MemberView[] {
    return this.list;
  }

  /** Addresses containing "down" fail; "boom" throws an unexpected error. */
  async join(addresses: string[]): Promise<JoinResult> {
    this.joins.push(addresses);
    if (addresses.some((a) => a.includes('boom'))) throw new Error('secret internal detail');
    const errors = addresses
      .filter((a) => a.includes('down'))
      .map((address) => ({ address, message: 'refused' }));
    if (errors.length === addresses.length) {
      throw new MeshError('join_failed', `could not join any of ${addresses.length} address(es)`);
    }
    return { joined: addresses.length - errors.length, errors };
  }

  async leave(): Promise<void> {
    this.leaves++;
  }
}
