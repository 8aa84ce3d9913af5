/** Shared helpers of the native-layer tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { acceptUnix, close, connectUnix, listenUnix } from '../../src/native/index.js';

/** A private directory under os.tmpdir() for socket files, removed by `done()`. */
export function tempDir(): { path: (name: string) => string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-native-'));
  return {
    path: (name) => join(dir, name),
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Two connected raw socket fds (client, server) through a real listening socket. */
export function rawPair(path: string): [number, number] {
  const listener = listenUnix(path);
  try {
    const client = connectUnix(path);
    const server = acceptUnix(listener);
    if (server < 0) throw new Error('accept found no connection');
    return [client, server];
  } finally {
    close(listener);
  }
}

/** URL of the compiled native index, for scripts run in a child process. */
export const NATIVE_INDEX = new URL('../../src/native/index.js', import.meta.url).href;

/**
 * Runs an ES module script in a fresh node (behind `wrapper`, a command
 * such as prlimit, when given); returns its exit status and output.
 */
export function runScript(source: string, timeoutMs = 10000, wrapper: string[] = []): { status: number | null; stdout: string; stderr: string } {
  const argv = [...wrapper, process.execPath, '--input-type=module', '-e', source];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    timeout: timeoutMs,
    cwd: fileURLToPath(new URL('.', import.meta.url)),
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
