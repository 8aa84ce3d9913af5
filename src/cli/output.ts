/**
 * How results look. Three forms:
 * - human tables (the default);
 * - `--json`: uvfio's own flat JSON for scripts (includes socket paths);
 * - `--dumpjson`: exactly mdevctl's JSON, for tools that already read it.
 */
import { toConfigJson } from '../daemon/definition.js';
import type { DeviceClient, MdevInfo, TypeInfo } from '../daemon/protocol.js';
import { qemuDeviceArg } from '../daemon/qemu.js';

/** Left-aligned columns two spaces apart; the last column is not padded. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

// ---- types -------------------------------------------------------------------

/** `types` as a table, one row per type; nothing at all when there are none. */
export function typesTable(types: TypeInfo[]): string {
  if (types.length === 0) return '';
  return table(
    ['PARENT', 'TYPE', 'AVAILABLE', 'DEVICE API', 'NAME', 'DESCRIPTION'],
    types.map((t) => [t.parent, t.type, String(t.availableInstances), t.deviceApi, t.name, t.description ?? '']),
  );
}

/** `types --json`: one flat object per type, with mdevctl's field names. */
export function typesJson(types: TypeInfo[]): unknown {
  return types.map((t) => ({
    parent: t.parent,
    mdev_type: t.type,
    name: t.name,
    ...(t.description === undefined ? {} : { description: t.description }),
    device_api: t.deviceApi,
    available_instances: t.availableInstances,
  }));
}

/** mdevctl's `types --dumpjson`: `[{ parent: [{ type: {…} }, …] }]`, `[]` when empty. */
export function typesDumpJson(types: TypeInfo[]): unknown {
  const byParent: Record<string, unknown[]> = {};
  for (const t of types) {
    (byParent[t.parent] ??= []).push({
      [t.type]: {
        available_instances: t.availableInstances,
        device_api: t.deviceApi,
        name: t.name,
        ...(t.description === undefined ? {} : { description: t.description }),
      },
    });
  }
  return Object.keys(byParent).length === 0 ? [] : [byParent];
}

// ---- devices -----------------------------------------------------------------

/**
 * `list` (running devices) or `list --defined`. With `verbose`, each row is
 * followed by its attributes as mdevctl prints them, and a running device
 * by its QEMU option and the clients connected to it.
 */
export function devicesTable(devices: MdevInfo[], defined: boolean, verbose: boolean): string {
  if (devices.length === 0) return '';
  const header = defined ? ['UUID', 'PARENT', 'TYPE', 'START', 'RUNNING'] : ['UUID', 'PARENT', 'TYPE', 'START', 'DEFINED', 'SOCKET'];
  const rows = devices.map((d) =>
    defined ? [d.uuid, d.parent, d.mdevType, d.start, yes(d.active)] : [d.uuid, d.parent, d.mdevType, d.start, yes(d.defined), d.socket ?? '-'],
  );
  const text = table(header, rows);
  if (!verbose) return text;
  const lines = text.trimEnd().split('\n');
  const out = [lines[0]!];
  devices.forEach((d, i) => {
    out.push(lines[i + 1]!);
    if (d.attrs.length > 0) {
      out.push('  Attrs:');
      d.attrs.forEach((a, j) => out.push(`    @{${j}}: ${JSON.stringify({ [a.name]: a.value })}`));
    }
    if (d.socket !== undefined) out.push(`  QEMU: ${qemuDeviceArg(d.socket)}`);
    if (d.vnc !== undefined) out.push(`  VNC: ${d.vnc}`);
    if (d.clients !== undefined) {
      out.push(`  Clients: ${d.clients.length === 0 ? 'none' : ''}`.trimEnd());
      for (const c of d.clients) out.push(`    ${clientLine(c)}`);
    }
  });
  return out.join('\n') + '\n';
}

/** `--json`: one flat object per device. */
export function deviceJson(d: MdevInfo): unknown {
  const { attrs } = toConfigJson(d);
  return {
    uuid: d.uuid,
    parent: d.parent,
    mdev_type: d.mdevType,
    start: d.start,
    attrs,
    active: d.active,
    defined: d.defined,
    ...(d.socket === undefined ? {} : { socket: d.socket }),
    ...(d.vnc === undefined ? {} : { vnc: d.vnc }),
    ...(d.clients === undefined ? {} : { clients: d.clients.map(clientJson) }),
  };
}

/** `pid 4242 uid 107 gid 107 since 2026-11-21T13:20:00Z: qemu-system-x86_64 …` (the whole command line). */
export function clientLine(c: DeviceClient): string {
  const who = c.pid > 0 ? `pid ${c.pid}` : c.pid === 0 ? 'pid ? (another pid namespace)' : 'pid ?';
  const since = new Date(c.connectedAt).toISOString().replace(/\.\d+Z$/, 'Z');
  const state = c.bound ? '' : ' (no handshake yet)';
  return `${who} uid ${c.uid} gid ${c.gid} since ${since}${state}: ${c.command ?? '(command unknown)'}`;
}

/** A client in `--json`: mdevctl-style snake_case names. */
export function clientJson(c: DeviceClient): unknown {
  return { id: c.id, pid: c.pid, uid: c.uid, gid: c.gid, command: c.command, connected_at: new Date(c.connectedAt).toISOString(), bound: c.bound };
}

/**
 * mdevctl's `list --dumpjson`: with a UUID that selects exactly one device,
 * that device's configuration file; otherwise
 * `[{ parent: [{ uuid: config }, …] }]`, `[]` when empty.
 */
export function devicesDumpJson(devices: MdevInfo[], uuidGiven: boolean): unknown {
  if (uuidGiven && devices.length === 1) return toConfigJson(devices[0]!);
  const byParent: Record<string, unknown[]> = {};
  for (const d of [...devices].sort((a, b) => a.parent.localeCompare(b.parent))) {
    (byParent[d.parent] ??= []).push({ [d.uuid]: toConfigJson(d) });
  }
  return Object.keys(byParent).length === 0 ? [] : [byParent];
}

/** JSON as mdevctl prints it: two-space indentation, newline at the end. */
export function prettyJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function yes(b: boolean): string {
  return b ? 'yes' : 'no';
}
