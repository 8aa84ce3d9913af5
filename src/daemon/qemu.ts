/**
 * The QEMU option that attaches a device served on a UNIX socket. QEMU's
 * vfio-user-pci takes `socket` as a SocketAddress object, which only the
 * JSON form of -device can express (`socket=/path` is refused).
 */

/** The JSON value of `-device`. */
function qemuDeviceJson(socketPath: string): string {
  return JSON.stringify({ driver: 'vfio-user-pci', socket: { type: 'unix', path: socketPath } });
}

/** `-device '{…}'`, quoted for a POSIX shell. */
export function qemuDeviceArg(socketPath: string): string {
  return `-device ${shellQuote(qemuDeviceJson(socketPath))}`;
}

/** Single-quotes a word for sh; a quote inside becomes '\''. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
