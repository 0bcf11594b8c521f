// The agent's own services across a restart: registrations kept in its data dir are loaded again,
// and one that an older version accepted but this one refuses (an upstream port another service
// uses) is left out with a warning rather than stopping the agent; it stays on disk until it is
// deregistered. Registrations with weights, and those stored before weights existed, both load.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { LocalServices } from '../../../src/catalog/local.js';
import { KEYS, Store } from '../../../src/store/store.js';

describe('local services at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-local-services-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts without a stored registration whose upstream port another service holds', async () => {
    const store = await Store.open(dir);
    const def = (id: string, name: string, service: string) =>
      JSON.stringify({ id, name, port: 1, upstreams: [{ service, localPort: 9191 }] });
    // As an older agent could have stored them: two callers on one upstream port.
    await store.put(`${KEYS.servicesPrefix}a-1`, def('a-1', 'a', 'api'));
    await store.put(`${KEYS.servicesPrefix}b-1`, def('b-1', 'b', 'api'));
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const local = new LocalServices({
      store,
      log,
      configDir: undefined,
      enableScriptChecks: false,
      onChange: () => undefined,
    });
    await local.start();
    try {
      assert.deepEqual(
        local.list().map((s) => s.definition.id),
        ['a-1'],
      );
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /stored service registration not loaded/);
      assert.match(warnings[0] ?? '', /localPort 9191 is used by service \\"a-1\\"/);
      assert.ok(await store.get(`${KEYS.servicesPrefix}b-1`), 'kept on disk');
      // Until the operator removes it: deregistering the id deletes what was stored.
      await local.deregister('b-1');
      assert.equal(await store.get(`${KEYS.servicesPrefix}b-1`), undefined, 'removed by deregister');
      await assert.rejects(local.deregister('b-1'), /no service with id "b-1"/);
    } finally {
      local.stop();
      await store.close();
    }
  });

  it('loads a stored registration with weights, and one stored before weights existed', async () => {
    const store = await Store.open(join(dir, 'weights'));
    await store.put(
      `${KEYS.servicesPrefix}w-1`,
      JSON.stringify({ id: 'w-1', name: 'w', port: 1, weights: { passing: 4 } }),
    );
    await store.put(`${KEYS.servicesPrefix}o-1`, JSON.stringify({ id: 'o-1', name: 'o', port: 2 }));
    const local = new LocalServices({
      store,
      log: pino({ level: 'silent' }),
      configDir: undefined,
      enableScriptChecks: false,
      onChange: () => undefined,
    });
    await local.start();
    try {
      const byId = Object.fromEntries(local.list().map((s) => [s.definition.id, s.definition.weights]));
      assert.deepEqual(byId, { 'o-1': undefined, 'w-1': { passing: 4, warning: 1 } });
    } finally {
      local.stop();
      await store.close();
    }
  });
});
