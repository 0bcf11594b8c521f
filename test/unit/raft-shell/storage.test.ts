// RaftStorage on a real LevelDB in a temporary directory: what is persisted comes back after a
// reopen, a leader's entries replace a conflicting suffix, snapshots drop the entries they cover,
// and committed reads never go past the commit index.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Entry, Ready } from '../../../src/core/raft/types.js';
import { RaftStorage } from '../../../src/raft/storage.js';
import { Store } from '../../../src/store/store.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(text) };
}

function ready(p: Partial<Ready>): Ready {
  return { entries: [], messages: [], committed: [], readStates: [], ...p };
}

async function open(dir?: string): Promise<{ dir: string; store: Store; storage: RaftStorage }> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'mesh-raft-storage-'));
  if (!dir) dirs.push(d);
  const store = await Store.open(d);
  return { dir: d, store, storage: new RaftStorage(store) };
}

const text = (e: Entry) => new TextDecoder().decode(e.data);

describe('RaftStorage', () => {
  it('restores hard state and entries after a reopen', async () => {
    const a = await open();
    await a.storage.load();
    await a.storage.persist(
      ready({
        hardState: { term: 2, vote: 'x', commit: 2 },
        entries: [entry(1, 1), entry(2, 2), entry(3, 2)],
      }),
    );
    await a.store.close();
    const b = await open(a.dir);
    const loaded = await b.storage.load();
    assert.deepEqual(loaded.restore.hardState, { term: 2, vote: 'x', commit: 2 });
    assert.deepEqual(
      loaded.restore.entries.map((e) => [e.index, e.term, text(e)]),
      [
        [1, 1, 'e1'],
        [2, 2, 'e2'],
        [3, 2, 'e3'],
      ],
    );
    await b.store.close();
  });

  it('a commit-only change waits for the next write (or flush) and never goes back', async () => {
    const a = await open();
    await a.storage.load();
    await a.storage.persist(ready({ hardState: { term: 1, vote: 'x', commit: 0 }, entries: [entry(1, 1)] }));
    await a.storage.persist(ready({ hardState: { term: 1, vote: 'x', commit: 1 } }));
    await a.store.close();
    // Not written: a restarted node learns its commit index again from the leader.
    let b = await open(a.dir);
    assert.deepEqual((await b.storage.load()).restore.hardState, { term: 1, vote: 'x', commit: 0 });
    await b.storage.persist(ready({ hardState: { term: 1, vote: 'x', commit: 1 } }));
    // The next batch with entries carries it, though its Ready has no hard state of its own.
    await b.storage.persist(ready({ entries: [entry(2, 1)] }));
    await b.storage.persist(ready({ hardState: { term: 1, vote: 'x', commit: 2 } }));
    await b.storage.flush();
    await b.store.close();
    b = await open(a.dir);
    const loaded = await b.storage.load();
    assert.deepEqual(loaded.restore.hardState, { term: 1, vote: 'x', commit: 2 });
    assert.equal(b.storage.lastPersistedIndex, 2);
    await b.store.close();
  });

  it("replaces a conflicting suffix with the leader's entries", async () => {
    const a = await open();
    await a.storage.load();
    await a.storage.persist(ready({ entries: [entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)] }));
    await a.storage.persist(ready({ entries: [entry(3, 2, 'new3')] }));
    await a.store.close();
    const b = await open(a.dir);
    const loaded = await b.storage.load();
    assert.deepEqual(
      loaded.restore.entries.map((e) => [e.index, e.term, text(e)]),
      [
        [1, 1, 'e1'],
        [2, 1, 'e2'],
        [3, 2, 'new3'],
      ],
    );
    await b.store.close();
  });

  it('a snapshot drops the entries it covers; reads below it ask for the snapshot', async () => {
    const a = await open();
    await a.storage.load();
    await a.storage.persist(ready({ entries: [1, 2, 3, 4, 5].map((i) => entry(i, 1)) }));
    await a.storage.saveSnapshot({
      meta: { index: 3, term: 1, conf: { voters: ['a'], learners: [] } },
      data: new Uint8Array([9]),
    });
    assert.equal(await a.storage.readCommitted(2, 5, 100, 1 << 20), undefined, 'compacted: use the snapshot');
    const r = await a.storage.readCommitted(4, 5, 100, 1 << 20);
    assert.ok(r);
    assert.equal(r.prevTerm, 1, 'the term before index 4 comes from the snapshot');
    assert.deepEqual(
      r.entries.map((e) => e.index),
      [4, 5],
    );
    await a.store.close();
    const b = await open(a.dir);
    const loaded = await b.storage.load();
    assert.equal(loaded.snapshot?.meta.index, 3);
    assert.deepEqual(
      loaded.restore.entries.map((e) => e.index),
      [4, 5],
    );
    await b.store.close();
  });

  it('committed reads stop at the commit index and at the entry bound', async () => {
    const a = await open();
    await a.storage.load();
    await a.storage.persist(ready({ entries: [1, 2, 3, 4, 5, 6].map((i) => entry(i, 1)) }));
    assert.deepEqual(
      (await a.storage.readCommitted(1, 4, 100, 1 << 20))?.entries.map((e) => e.index),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      (await a.storage.readCommitted(2, 6, 2, 1 << 20))?.entries.map((e) => e.index),
      [2, 3],
    );
    assert.deepEqual((await a.storage.readCommitted(7, 6, 100, 1 << 20))?.entries, []);
    await a.store.close();
  });

  it('refuses a second agent on the same data dir with a clear message', async () => {
    const a = await open();
    await assert.rejects(Store.open(a.dir), /in use by another agent/);
    await a.store.close();
  });
});
