/** A client of a device in a few words, for log lines and the command line's messages. */
import type { DeviceClient } from './protocol.js';

/** `pid 1234 (qemu-system-x86_64 -name vm1 …)`, for a person; at most `width` characters of command. */
export function describeClient(c: DeviceClient, width = 80): string {
  const who = c.pid > 0 ? `pid ${c.pid}` : c.pid === 0 ? 'a process outside our pid namespace' : 'an unknown process';
  if (c.command === null || c.command === '') return who;
  const command = c.command.length > width ? `${c.command.slice(0, width - 1)}…` : c.command;
  return `${who} (${command})`;
}
