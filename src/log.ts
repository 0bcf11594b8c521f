// The root logger. Every module takes a child: `log.child({ module: 'membership' })`.
import pino, { type Logger } from 'pino';
import type { LogLevel } from './agent/agent-config.js';

export function createLogger(level: LogLevel, pretty: boolean): Logger {
  if (pretty) {
    return pino({
      level,
      transport: {
        target: 'pino-pretty',
        options: { colorize: process.stdout.isTTY, translateTime: 'HH:MM:ss.l' },
      },
    });
  }
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}
