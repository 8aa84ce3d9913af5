/**
 * Echo round trip over the native layer: a UnixSocket client and a
 * UnixServer echo in one process, strictly sequential 32-byte messages.
 * It measures what uvfio's transport adds to the raw UNIX socket round
 * trip (compare with /work/shared/bench's raw_server + bench_client).
 *
 *   node dist/bench/native-echo.js [roundTrips=100000] [size=32]
 *
 * Prints one key=value line: median, p90, p99, p99.9 in microseconds, and
 * round trips per second.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { UnixServer } from '../src/vfio-user/transport/unix-server.js';
import { UnixSocket } from '../src/vfio-user/transport/unix-socket.js';

const roundTrips = Number(process.argv[2] ?? 100_000);
const size = Number(process.argv[3] ?? 32);
const warmup = Math.min(10_000, roundTrips);

const dir = mkdtempSync(join(tmpdir(), 'uvfio-bench-'));
const server = UnixServer.listen(join(dir, 'echo.sock'));
server.onConnection = (sock) => {
  sock.onData = (chunk) => sock.write(chunk);
};

const client = UnixSocket.connect(server.path);
const message = new Uint8Array(size).fill(0x5a);
const times = new Float64Array(roundTrips);
let received = 0;
let done = 0;
let started = 0;

function send(): void {
  received = 0;
  started = performance.now();
  client.write(message);
}

function finish(): void {
  client.destroy();
  server.close();
  rmSync(dir, { recursive: true, force: true });
  const sorted = times.slice().sort();
  const pct = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! * 1000).toFixed(2);
  const total = times.reduce((a, b) => a + b, 0) / 1000;
  console.log(
    `bench=native-echo size=${size} n=${roundTrips} median_us=${pct(0.5)} p90_us=${pct(0.9)} ` +
      `p99_us=${pct(0.99)} p999_us=${pct(0.999)} ops_per_s=${Math.round(roundTrips / total)}`,
  );
}

client.onData = (chunk) => {
  received += chunk.length;
  if (received < size) return;
  const elapsed = performance.now() - started;
  if (done >= warmup) times[done - warmup] = elapsed;
  if (++done === roundTrips + warmup) finish();
  else send();
};
client.onClose = (err) => {
  if (err !== undefined) throw err;
};

send();
