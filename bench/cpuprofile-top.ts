/**
 * Where a process's time went, from a `node --cpu-prof` profile: the
 * functions with the most self time (samples taken while that function,
 * not its callees, ran), each with its share of the whole profile, the
 * same summed by source file, and the share of time the process was idle
 * (waiting in the event loop).
 * bench/virtio-blk-guest.sh prints this for the daemon (VB_PROFILE=1).
 *
 *   node dist/bench/cpuprofile-top.js FILE.cpuprofile [N=25]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const [file, nArg] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: cpuprofile-top FILE.cpuprofile [N]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));

// Sample time per node: each sample lasts until the next one.
const selfUs = new Map<string, number>();
const fileUs = new Map<string, number>();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i] ?? -1);
  const us = profile.timeDeltas[i + 1] ?? 0;
  if (node === undefined) continue;
  const f = node.callFrame;
  const where = f.url === '' ? '' : ` ${basename(f.url)}:${f.lineNumber + 1}`;
  const key = `${f.functionName === '' ? '(anonymous)' : f.functionName}${where}`;
  selfUs.set(key, (selfUs.get(key) ?? 0) + us);
  if (f.url !== '') fileUs.set(basename(f.url), (fileUs.get(basename(f.url)) ?? 0) + us);
  total += us;
}
const pct = (us: number): string => `${((100 * us) / Math.max(total, 1)).toFixed(1)}%`;
const idle = selfUs.get('(idle)') ?? 0;
console.log(`profile ${(total / 1e6).toFixed(2)} s, idle ${pct(idle)}, busy ${((total - idle) / 1e6).toFixed(2)} s`);
const top = [...selfUs.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
for (const [key, us] of top.slice(0, Number(nArg ?? 25))) {
  console.log(`${pct(us).padStart(6)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`);
}
console.log('by file:');
const files = [...fileUs.entries()].sort((a, b) => b[1] - a[1]);
for (const [name, us] of files.slice(0, 12)) console.log(`${pct(us).padStart(6)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`);
