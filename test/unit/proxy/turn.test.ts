// Writes held until the end of the event loop's turn (src/proxy/h1/turn.ts), over real loopback
// sockets: what a turn writes leaves at its end, in order with every other write of the socket;
// end() and destroy() behave as they do for any socket; a full buffer is still reported; a large
// write is not held.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { corkedInTurn, cutOff, HOLD_BYTES_MAX, writeInTurn } from '../../../src/proxy/h1/turn.js';

describe('writes held to the end of the turn', () => {
  let server: Server;
  let port = 0;
  /** What each accepted connection received, in accept order, once it ended. */
  const received: Promise<string>[] = [];

  before(async () => {
    server = createServer((s) => {
      received.push(
        new Promise((resolve) => {
          let text = '';
          s.setEncoding('latin1');
          s.on('data', (d: string) => {
            text += d;
          });
          s.on('end', () => {
            resolve(text);
            s.end();
          });
          s.on('error', () => resolve(text));
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  after(() => server.close());

  /** Connections opened so far (the server accepts them in the same order). */
  let opened = 0;

  /** A connection to the server, and what the server will have received once it ends. */
  async function open(): Promise<{ socket: Socket; text: () => Promise<string> }> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const index = opened++;
    // Connected on this side may come a turn before the server's handler has run.
    while (received.length <= index) await nextTurn();
    return { socket, text: () => received[index] as Promise<string> };
  }

  it('sends a turn’s writes together at its end, in order with direct writes', async () => {
    const { socket, text } = await open();
    writeInTurn(socket, 'GET / ');
    socket.write('HTTP/1.1');
    writeInTurn(socket, Buffer.from('\r\n'));
    // Held, not sent: the socket is corked once, however many writes the turn makes.
    assert.equal(socket.writableLength, 'GET / HTTP/1.1\r\n'.length);
    assert.equal(corkedInTurn(), 1);
    await nextTurn();
    assert.equal(socket.writableLength, 0);
    assert.equal(corkedInTurn(), 0);
    socket.end();
    assert.equal(await text(), 'GET / HTTP/1.1\r\n');
  });

  it('end() in the same turn sends what is held before the connection ends', async () => {
    const { socket, text } = await open();
    writeInTurn(socket, 'held ');
    assert.equal(socket.writableCorked, 1);
    socket.end('then the end');
    assert.equal(await text(), 'held then the end');
  });

  it('writes a large chunk at once, unless the socket is held already this turn', async () => {
    const { socket, text } = await open();
    const big = Buffer.alloc(HOLD_BYTES_MAX, 0x62);
    writeInTurn(socket, big);
    // Not held: handed to the socket at once.
    assert.equal(socket.writableCorked, 0);
    assert.equal(corkedInTurn(), 0);
    await nextTurn();
    if (socket.writableLength > 0) await once(socket, 'drain');
    // Held for a small write first: the large one queues behind it, and the buffer reads full.
    // (A high-water mark's worth after it: 16 KiB in Node 20, 64 KiB from Node 22.)
    const full = Buffer.alloc(socket.writableHighWaterMark, 0x63);
    writeInTurn(socket, 'a');
    assert.equal(writeInTurn(socket, full), false);
    assert.equal(socket.writableLength, full.length + 1);
    await once(socket, 'drain');
    socket.end();
    assert.equal(await text(), `${big.toString('latin1')}a${full.toString('latin1')}`);
  });

  it('flushes every socket corked in a turn, whatever became of the others', async () => {
    const conns = [];
    for (let i = 0; i < 12; i++) conns.push(await open());
    for (const [i, c] of conns.entries()) writeInTurn(c.socket, `request ${i}`);
    assert.equal(corkedInTurn(), 12);
    // One of them is cut before the turn ends: what it held is dropped, as with any unsent bytes.
    conns[3]?.socket.destroy();
    await nextTurn();
    assert.equal(corkedInTurn(), 0);
    for (const c of conns) c.socket.end();
    for (const [i, c] of conns.entries()) assert.equal(await c.text(), i === 3 ? '' : `request ${i}`);
  });

  it('cuts off a socket whose flush throws, and still flushes the others', async () => {
    const before = await open();
    const after = await open();
    let destroyed: Error | undefined;
    const broken = {
      writableCorked: 0,
      cork(): void {
        this.writableCorked++;
      },
      uncork(): void {
        throw new Error('uncork failed');
      },
      write: (): boolean => true,
      destroy(err?: Error): void {
        destroyed = err;
      },
    };
    writeInTurn(before.socket, 'first');
    writeInTurn(broken, 'lost');
    writeInTurn(after.socket, 'last');
    assert.equal(corkedInTurn(), 3);
    await nextTurn();
    assert.equal(destroyed?.message, 'uncork failed');
    assert.equal(corkedInTurn(), 0);
    // The next turn's writes are held and sent as usual.
    writeInTurn(before.socket, ' again');
    assert.equal(corkedInTurn(), 1);
    before.socket.end();
    after.socket.end();
    assert.equal(await before.text(), 'first again');
    assert.equal(await after.text(), 'last');
  });

  it('cutOff sends what the turn held before destroying the socket', async () => {
    const { socket, text } = await open();
    writeInTurn(socket, 'the last bytes of a response');
    cutOff(socket);
    assert.equal(socket.destroyed, true);
    assert.equal(await text(), 'the last bytes of a response');
  });

  it('writes at once to a socket that cannot be corked (a mux stream batches its own frames)', () => {
    const got: string[] = [];
    const stream = {
      write(chunk: Buffer | string): boolean {
        got.push(String(chunk));
        return true;
      },
    };
    assert.equal(writeInTurn(stream, 'frame'), true);
    assert.deepEqual(got, ['frame']);
    assert.equal(corkedInTurn(), 0);
  });
});
