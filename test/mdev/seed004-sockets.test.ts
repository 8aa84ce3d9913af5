/**
 * Seed 004 through real sockets: the mtty driver on the bus, the vfio-user
 * server putting each device on its own UNIX socket, clients connecting
 * with the vfio-user client, registering an eventfd on the REQ interrupt
 * and leaving when it fires (or when they are done). One creator, four
 * removers, three clients.
 *
 * Choices (UUIDs, types, how long a client stays) come from a seeded PRNG;
 * the interleaving here also depends on the kernel's socket I/O, so a seed
 * replays the same choices, not always the same schedule (the scheduled
 * tests in seed004-stress cover exact replay). Checked all along: a listed
 * device has its socket; a removed UUID has none. At the end: no socket
 * file, no connection, no fd beyond the baseline, the pool whole, the
 * core empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PciIrq, VfioCore, type VfioError } from '../../src/core/index.js';
import { MdevBus } from '../../src/mdev/index.js';
import { type MttyDevice, MttyDriver } from '../../src/drivers/mtty/index.js';
import { InstrumentedDriver } from './instrumented-driver.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
import { VfioUserClient } from '../../src/vfio-user/client.js';
import { openFdCount } from '../../src/native/index.js';
import { Prng } from '../support/prng.js';
import { uuidOf } from './helpers.js';
import { until } from '../support/until.js';

const SEED = Number(process.env.STRESS_SEED ?? 4004);
const ITERATIONS = Number(process.env.STRESS_SOCKET_ITERATIONS ?? 4_000);

/** What a client may see when its device goes away under it while it connects. */
const CONNECT_RACES = ['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'ENOTCONN', 'EPIPE'];

function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Options {
  seed: number;
  iterations: number;
  removers: number;
  clients: number;
  uuids: number;
  ports: number;
}

async function runSockets(o: Options): Promise<Record<string, number>> {
  const rng = new Prng(o.seed);
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-mdev-sock-'));
  const core = new VfioCore({ requestBackoffMs: (n) => Math.min(2 ** n, 20) });
  const server = new VfioUserServer({ core, socketDir: dir });
  const bus = new MdevBus({ core, serve: (device) => server.serve(device) });
  const mtty = new MttyDriver({ ports: o.ports });
  const driver = new InstrumentedDriver(mtty, {
    point: () => Promise.resolve(),
    refuse: () => false,
    pool: { size: o.ports, free: () => mtty.pool.free, portsOf: (d) => (d as MttyDevice).ports },
  });
  const parent = bus.registerParent({ name: 'mtty', driver });
  const uuids = Array.from({ length: o.uuids }, (_, i) => uuidOf(i + 1));
  const sock = (uuid: string): string => join(dir, `${uuid}.sock`);
  const stats: Record<string, number> = {};
  const count = (key: string): void => {
    stats[key] = (stats[key] ?? 0) + 1;
  };
  const broken: string[] = [];
  let creatorDone = false;

  try {
    // One warm-up cycle with a client, so lazily opened fds count in the baseline.
    const warm = await bus.create(uuids[0]!, 'mtty-1');
    (await VfioUserClient.connect(sock(warm.uuid))).close();
    await bus.remove(warm.uuid);
    await yieldToIo();
    const baselineFds = openFdCount();

    const creator = async (): Promise<void> => {
      for (let i = 0; i < o.iterations; i++) {
        await yieldToIo();
        const uuid = rng.pick(uuids);
        try {
          const mdev = await bus.create(uuid, rng.pick(parent.types));
          count('created');
          broken.push(...driver.poolProblems(), ...driver.violations.splice(0));
          if (bus.device(uuid) === mdev && !existsSync(sock(uuid))) broken.push(`${uuid} listed without its socket`);
        } catch (err) {
          const code = (err as VfioError).code;
          if (code !== 'EEXIST' && code !== 'EUSERS') broken.push(`create: ${code} ${(err as Error).message}`);
          count(`create ${code}`);
        }
      }
      creatorDone = true;
    };

    const remover = async (): Promise<void> => {
      while (!creatorDone || bus.heldUuids().length > 0) {
        // Half the time a millisecond's pause, so devices live long enough for clients to come.
        await (rng.chance(0.5) ? sleep(1) : yieldToIo());
        const listed = bus.devices();
        const uuid = listed.length > 0 && rng.chance(0.75) ? rng.pick(listed).uuid : rng.pick(uuids);
        try {
          await bus.remove(uuid);
          count('removed');
          if (!bus.heldUuids().includes(uuid) && existsSync(sock(uuid))) broken.push(`${uuid} removed but its socket is left`);
        } catch (err) {
          const code = (err as VfioError).code;
          if (code !== 'ENODEV') broken.push(`remove: ${code} ${(err as Error).message}`);
          count(`remove ${code}`);
        }
      }
    };

    // Clients go for new devices first, racing the removers to them.
    const fresh: string[] = [];
    bus.on('created', (mdev) => fresh.push(mdev.uuid));
    const client = async (): Promise<void> => {
      while (!creatorDone) {
        await yieldToIo();
        const listed = bus.devices();
        const uuid = fresh.pop() ?? (listed.length > 0 ? rng.pick(listed).uuid : undefined);
        fresh.length = 0;
        if (uuid === undefined || !bus.device(uuid)) continue;
        let c: VfioUserClient;
        try {
          c = await VfioUserClient.connect(sock(uuid), { timeoutMs: 2000 });
        } catch (err) {
          const code = (err as VfioError).code;
          if (!CONNECT_RACES.includes(code)) broken.push(`connect: ${code} ${(err as Error).message}`);
          count(`connect ${code}`);
          continue;
        }
        count('connected');
        try {
          const req = await c.setIrqEventfds(PciIrq.REQ, 0, 1);
          let asked = false;
          void req.lines[0]!.next(60_000).then(
            () => {
              asked = true;
            },
            () => {},
          );
          for (let i = rng.int(6); i >= 0 && !asked; i--) {
            await c.regionWrite(0, 7, Uint8Array.of(i)); // the UART's scratch register
            await c.regionRead(0, 7, 1);
            if (rng.chance(0.3)) await sleep(1);
          }
          if (asked) count('left on REQ');
        } catch (err) {
          broken.push(`client op: ${(err as VfioError).code} ${(err as Error).message}`);
        } finally {
          c.close();
        }
      }
    };

    await Promise.all([creator(), ...Array.from({ length: o.removers }, remover), ...Array.from({ length: o.clients }, client)]);
    assert.deepEqual(broken.slice(0, 10), [], `seed ${o.seed}: invariants broken`);

    // Nothing left behind (teardown of the last connections may still be under way).
    await until(() => server.connectionCount() === 0 && openFdCount() <= baselineFds, 'the last connections torn down').catch(() => {});
    assert.deepEqual(bus.devices(), []);
    assert.deepEqual(bus.heldUuids(), []);
    assert.deepEqual(core.devices(), []);
    assert.equal(server.connectionCount(), 0, 'no connection left');
    assert.deepEqual(readdirSync(dir), [], 'no socket file left');
    assert.equal(mtty.pool.free, o.ports, 'the pool is whole');
    assert.deepEqual(
      parent.types.map((t) => t.instances),
      [0, 0],
    );
    assert.deepEqual(driver.violations, []);
    for (const d of driver.probed) assert.equal(driver.releases.get(d), 1, `${d.name} released exactly once`);
    assert.equal(openFdCount(), baselineFds, 'no fd left open');
    return stats;
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('seed 004 through real sockets: mtty, the vfio-user server, clients leaving on REQ', async (t) => {
  const started = performance.now();
  const stats = await runSockets({ seed: SEED, iterations: ITERATIONS, removers: 4, clients: 3, uuids: 16, ports: 8 });
  t.diagnostic(`seed ${SEED}: ${JSON.stringify(stats)} in ${Math.round(performance.now() - started)} ms`);
});
