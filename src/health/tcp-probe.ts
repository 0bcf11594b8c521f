// TCP check: the port accepts a connection, nothing more is said. Closed at once after connecting.
import net from 'node:net';
import { parseHostPort } from '../config/host-port.js';
import { abortPhrase, deadline, type ProbeResult, reason } from './probe-common.js';

export async function tcpProbe(
  address: string,
  timeoutMs: number,
  parent: AbortSignal,
): Promise<ProbeResult> {
  const prefix = `TCP connect ${address}`;
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseHostPort(address, 'tcp check address', { minPort: 1 }));
  } catch (err) {
    return { status: 'critical', output: `${prefix}: ${reason(err)}` };
  }
  const d = deadline(timeoutMs, parent);
  let socket: net.Socket | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      socket = net.connect({ host, port, signal: d.signal });
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return { status: 'passing', output: `${prefix}: Success` };
  } catch (err) {
    const why = d.cause();
    return { status: 'critical', output: `${prefix}: ${why ? abortPhrase(why, timeoutMs) : reason(err)}` };
  } finally {
    socket?.destroy();
    d.dispose();
  }
}
