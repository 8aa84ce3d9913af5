/**
 * What the command line asks for, done: mdevctl's verbs over the store of
 * definitions and the mdev bus of running devices. The control server calls
 * handle() for each request; the command line calls it directly, over a
 * bus with nothing running, for the verbs that only touch definitions when
 * no daemon runs.
 *
 * Concurrency: every store call is synchronous and transactional, and the
 * bus serialises create/remove per UUID itself, so concurrent requests need
 * no lock here; a loser gets the bus's or the store's error (EEXIST,
 * ENODEV, ENOENT).
 */
import { randomUUID } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { performance } from 'node:perf_hooks';
import { VfioError } from '../base/errors.js';
import { screenshotDevice } from '../drivers/display/find-display.js';
import { migrateDevice } from './migrate.js';
import type { MdevBus, MdevDevice, MdevParent, MdevType } from '../mdev/index.js';
import { normalizeUuid } from '../mdev/uuid.js';
import { checkArgs, type ArgSpec } from './args.js';
import { NO_CALL, type ControlCall } from './control-server.js';
import { addAttr, attrsToRecord, deleteAttr, parseConfig, type MdevAttr, type MdevConfig, type MdevDefinition } from './definition.js';
import type { DeviceServer } from './device-server.js';
import type { Logger } from './log.js';
import { describeClient } from './describe-client.js';
import { awaitRelease } from './release.js';
import { CONTROL_OPS, type ArgsOf, type ControlOp, type DeviceClient, type MdevInfo, type ResultOf, type TypeInfo } from './protocol.js';
import type { DefinitionStore } from './store.js';
import { TRACE_BACKLOG_BYTES } from './trace-feed.js';
import { TRACE_FORMAT } from './trace-record.js';

export interface MdevServiceOptions {
  store: DefinitionStore;
  bus: MdevBus;
  /** What serves running devices: their sockets and clients. None when offline. */
  server?: ServedDevices;
  /** `HOST:PORT` of the VNC server of a running display device, if any. */
  vncAddress?: (uuid: string) => string | undefined;
  log?: Logger;
}

/** What the service needs of the device server. */
export type ServedDevices = Pick<DeviceServer, 'socketPath' | 'clients' | 'dropClient' | 'watchRequests' | 'trace'>;

/** Operations the daemon answers itself, not the service. */
type DaemonOp = 'ping' | 'console';

/** Which arguments each operation takes. */
const SPECS: Record<Exclude<ControlOp, DaemonOp>, ArgSpec> = {
  types: { parent: 'string?' },
  list: { defined: 'boolean?', uuid: 'string?', parent: 'string?' },
  define: { uuid: 'string?', parent: 'string?', type: 'string?', auto: 'boolean?', addattr: 'string?', value: 'text?', config: 'object?' },
  undefine: { uuid: 'string', parent: 'string?' },
  start: { uuid: 'string?', parent: 'string?', type: 'string?', addattr: 'string?', value: 'text?', config: 'object?' },
  stop: { uuid: 'string', timeoutMs: 'index?', force: 'boolean?' },
  screenshot: { uuid: 'string', path: 'string' },
  migrate: { uuid: 'string', socket: 'string', precopyRounds: 'index?' },
  trace: { uuid: 'string' },
  modify: {
    uuid: 'string',
    parent: 'string?',
    type: 'string?',
    auto: 'boolean?',
    manual: 'boolean?',
    addattr: 'string?',
    value: 'text?',
    delattr: 'boolean?',
    index: 'index?',
    config: 'object?',
  },
};

export class MdevService {
  private readonly store: DefinitionStore;
  private readonly bus: MdevBus;
  private readonly server: ServedDevices | undefined;
  private readonly vncAddress: (uuid: string) => string | undefined;
  private readonly log: Logger | undefined;

  constructor(options: MdevServiceOptions) {
    this.store = options.store;
    this.bus = options.bus;
    this.server = options.server;
    this.vncAddress = options.vncAddress ?? (() => undefined);
    this.log = options.log;
  }

  /** Checks and runs one request. Every failure is a VfioError. `call` carries its events. */
  async handle(op: string, args: unknown, call: ControlCall = NO_CALL): Promise<unknown> {
    if (!CONTROL_OPS.includes(op as ControlOp) || !Object.hasOwn(SPECS, op)) {
      throw new VfioError('EINVAL', `unknown operation ${JSON.stringify(op)}`);
    }
    const o = op as Exclude<ControlOp, DaemonOp>;
    const a = checkArgs(o, args, SPECS[o]) as never;
    switch (o) {
      case 'types':
        return this.types(a);
      case 'list':
        return this.list(a);
      case 'define':
        return this.define(a);
      case 'undefine':
        return this.undefine(a);
      case 'start':
        return this.start(a);
      case 'stop':
        return this.stop(a, call);
      case 'modify':
        return this.modify(a);
      case 'screenshot':
        return this.screenshot(a);
      case 'migrate':
        return this.migrate(a);
      case 'trace':
        return this.trace(a, call);
    }
  }

  /**
   * Moves a running device's state into the vfio-user device at `socket`
   * (see migrate.ts): ENODEV when it is not running, ENOTTY when it cannot
   * migrate, the destination's errno when it refuses the stream.
   */
  async migrate(a: ArgsOf<'migrate'>): Promise<ResultOf<'migrate'>> {
    const uuid = normalizeUuid(a.uuid);
    if (!this.bus.device(uuid)) throw new VfioError('ENODEV', `${uuid} is not running`);
    const stats = await migrateDevice(this.bus.core, { uuid, socket: a.socket, precopyRounds: a.precopyRounds });
    this.log?.info('device state migrated', { uuid, to: a.socket, ...stats });
    return { ...stats };
  }

  /**
   * Streams what every client of a running device does, as events of
   * `call` (a header line, then trace-record.ts's events), until the device
   * stops or the caller hangs up; then answers how many were sent and
   * dropped. ENODEV when it is not running or not served, EINVAL without
   * events, EUSERS when too many traces run.
   */
  async trace(a: ArgsOf<'trace'>, call: ControlCall = NO_CALL): Promise<ResultOf<'trace'>> {
    const uuid = normalizeUuid(a.uuid);
    if (!call.events) throw new VfioError('EINVAL', 'trace sends its lines as events: the request must ask for them');
    const mdev = this.bus.device(uuid);
    if (!mdev || !this.server || this.server.socketPath(uuid) === undefined) throw new VfioError('ENODEV', `${uuid} is not running`);
    const start = performance.now();
    const tap = this.server.trace(uuid, { emit: (e) => call.emit(e), backlog: () => call.backlog() }, start);
    let reason = 'the reader hung up';
    try {
      const info = this.runningInfo(mdev);
      call.emit({
        type: 'trace',
        format: TRACE_FORMAT,
        uuid,
        parent: info.parent,
        mdevType: info.mdevType,
        attrs: info.attrs,
        startedAt: new Date(Date.now() - (performance.now() - start)).toISOString(),
        backlogLimit: TRACE_BACKLOG_BYTES,
      });
      this.log?.info('trace started', { uuid });
      await new Promise<void>((resolve) => {
        const gone = (m: MdevDevice) => {
          if (m.uuid !== uuid) return;
          reason = 'the device stopped';
          done();
        };
        const done = () => {
          this.bus.off('removing', gone);
          call.signal.removeEventListener('abort', done);
          resolve();
        };
        if (call.signal.aborted) return done();
        this.bus.on('removing', gone);
        call.signal.addEventListener('abort', done);
      });
    } finally {
      tap.close();
    }
    this.log?.info('trace ended', { uuid, events: tap.events, dropped: tap.dropped, reason });
    return { events: tap.events, dropped: tap.dropped, reason };
  }

  /**
   * Writes the current screen of a running display device to a PNG file:
   * ENODEV when it is not running, ENOTTY when it has no display, ENOENT
   * while its guest has programmed no mode yet.
   */
  async screenshot(a: ArgsOf<'screenshot'>): Promise<ResultOf<'screenshot'>> {
    const uuid = normalizeUuid(a.uuid);
    if (!isAbsolute(a.path)) throw new VfioError('EINVAL', `the screenshot path must be absolute, not ${a.path}`);
    if (!this.bus.device(uuid)) throw new VfioError('ENODEV', `${uuid} is not running`);
    const plane = await screenshotDevice(this.bus.core, uuid, a.path);
    this.log?.info('screenshot written', { uuid, path: a.path, width: plane.width, height: plane.height });
    return { plane: { ...plane } };
  }

  /** The types of every parent (or of one), with live availability. */
  types(a: ArgsOf<'types'>): ResultOf<'types'> {
    const parents = a.parent === undefined ? this.liveParents() : [this.parentNamed(a.parent)];
    const types: TypeInfo[] = parents.flatMap((p) =>
      p.types.map((t) => ({
        parent: p.name,
        type: t.id,
        name: t.name,
        ...(t.description === undefined ? {} : { description: t.description }),
        deviceApi: t.deviceApi,
        availableInstances: t.availableInstances,
      })),
    );
    return { types };
  }

  /** Running devices, or with `defined` the definitions; filtered by uuid and parent. */
  list(a: ArgsOf<'list'>): ResultOf<'list'> {
    const uuid = a.uuid === undefined ? undefined : normalizeUuid(a.uuid);
    const listing = this.store.list({ uuid, parent: a.parent });
    const problems = listing.problems.map((p) => p.message);
    if (a.defined) {
      const devices = listing.definitions.map((d) => this.infoOf(d, this.running(d.uuid, d.parent)));
      return { devices, problems };
    }
    const devices = this.bus
      .devices()
      .filter((m) => (uuid === undefined || m.uuid === uuid) && (a.parent === undefined || m.parent.name === a.parent))
      .sort((x, y) => x.uuid.localeCompare(y.uuid))
      .map((m) => this.runningInfo(m));
    return { devices, problems };
  }

  /**
   * Defines a device from options or from a configuration; a running
   * device's UUID alone defines it as it runs (mdevctl's promotion of a
   * transient device). EEXIST when already defined on that parent.
   */
  define(a: ArgsOf<'define'>): ResultOf<'define'> {
    const generated = a.uuid === undefined;
    const uuid = generated ? randomUUID() : normalizeUuid(a.uuid);
    let def: MdevDefinition;
    const attrs = attrArg(a);
    if (a.config !== undefined) {
      if (a.type !== undefined) throw new VfioError('EINVAL', '--type cannot be given with --jsonfile: the file names the type');
      if (attrs.length > 0) throw new VfioError('EINVAL', '--addattr cannot be given with --jsonfile: the file\'s "attrs" say them');
      if (a.auto) throw new VfioError('EINVAL', '--auto cannot be given with --jsonfile: the file\'s "start" says it');
      if (a.parent === undefined) throw new VfioError('EINVAL', '--parent is needed to define a device from --jsonfile');
      def = { uuid, parent: a.parent, ...this.configArg(a.config) };
    } else {
      const running = generated ? undefined : this.bus.device(uuid);
      const parent = a.parent ?? running?.parent.name;
      const mdevType = a.type ?? (running && running.parent.name === parent ? running.type.id : undefined);
      if (parent === undefined) throw new VfioError('EINVAL', `no parent given for ${uuid} (--parent), and it is not running`);
      if (mdevType === undefined) throw new VfioError('EINVAL', `no type given for ${uuid} (--type)`);
      const same = running && running.parent.name === parent && running.type.id === mdevType;
      def = {
        uuid,
        parent,
        mdevType,
        start: a.auto ? 'auto' : 'manual',
        attrs: attrs.length > 0 ? attrs : same ? this.runningInfo(running).attrs : [],
      };
    }
    this.typeOf(def.parent, def.mdevType);
    this.store.insert(def);
    this.log?.info('device defined', { uuid, parent: def.parent, type: def.mdevType, start: def.start });
    return { device: this.infoOf(def, this.running(uuid, def.parent)), generated };
  }

  /** Removes definitions (of every parent unless one is named); running devices keep running. */
  undefine(a: ArgsOf<'undefine'>): ResultOf<'undefine'> {
    const removed = this.store.remove(normalizeUuid(a.uuid), a.parent);
    for (const r of removed) this.log?.info('device undefined', { uuid: r.uuid, parent: r.parent });
    return { removed };
  }

  /**
   * Starts a defined device by UUID (and parent, if several define it), or
   * a transient one from --parent and --type or from a configuration.
   */
  async start(a: ArgsOf<'start'>): Promise<ResultOf<'start'>> {
    const generated = a.uuid === undefined;
    const uuid = generated ? randomUUID() : normalizeUuid(a.uuid);
    let target: MdevDefinition | undefined;
    const attrs = attrArg(a);
    if (a.config !== undefined) {
      if (a.type !== undefined) throw new VfioError('EINVAL', '--type cannot be given with --jsonfile: the file names the type');
      if (attrs.length > 0) throw new VfioError('EINVAL', '--addattr cannot be given with --jsonfile: the file\'s "attrs" say them');
      if (a.parent === undefined) throw new VfioError('EINVAL', '--parent is needed to start a device from --jsonfile');
      target = { uuid, parent: a.parent, ...this.configArg(a.config) };
    } else {
      if (!generated) target = this.definitionToStart(uuid, a.parent, a.type);
      if (target !== undefined && attrs.length > 0) {
        throw new VfioError('EINVAL', `${uuid} is defined: its attributes are the definition's (change them with modify --addattr)`);
      }
      if (target === undefined) {
        if (a.parent === undefined || a.type === undefined) {
          throw new VfioError('EINVAL', `${generated ? 'a new device' : `${uuid} is not defined, so it`} needs --parent and --type to start`);
        }
        target = { uuid, parent: a.parent, mdevType: a.type, start: 'manual', attrs };
      }
    }
    const mdev = await this.bus.create(uuid, this.typeOf(target.parent, target.mdevType), attrsToRecord(target.attrs, uuid));
    const info = this.runningInfo(mdev);
    this.log?.info('device started', { uuid, parent: info.parent, type: info.mdevType, socket: info.socket });
    return { device: info, generated };
  }

  /**
   * Removes a running device once its clients let go: they are asked to
   * (REQ), and while they hold it, who they are is reported through `call`
   * and the log. With `timeoutMs`, those still there after it are dropped
   * with a warning that names them; with `force`, at once. ENODEV when it
   * is not running.
   */
  async stop(a: ArgsOf<'stop'>, call: ControlCall = NO_CALL): Promise<ResultOf<'stop'>> {
    const uuid = normalizeUuid(a.uuid);
    if (a.force && a.timeoutMs !== undefined) {
      throw new VfioError('EINVAL', '--force and --timeout cannot be combined: --force drops the clients at once');
    }
    const mdev = this.bus.device(uuid);
    if (!mdev) throw new VfioError('ENODEV', `${uuid} is not running`);
    const info = this.runningInfo(mdev);
    this.log?.info('device stopping', { uuid, clients: info.clients?.length ?? 0 });
    const removed = this.bus.remove(uuid);
    let dropped: DeviceClient[] = [];
    if (this.server) {
      const reason = a.force ? 'force' : 'timeout';
      const byDevice = await awaitRelease({
        server: this.server,
        uuids: [uuid],
        removed,
        deadlineMs: a.force ? 0 : (a.timeoutMs ?? Infinity),
        dropReason: a.force ? 'uvfio stop --force' : `uvfio stop --timeout: did not let go within ${a.timeoutMs} ms`,
        onWaiting: (_uuid, clients, waitedMs) => {
          this.log?.info('device held: its clients were asked to let go', { uuid, waitedMs, clients: clients.map((c) => describeClient(c)) });
          call.emit({ event: 'waiting', clients, waitedMs });
        },
        onDropping: (_uuid, clients, waitedMs) => {
          const fields = { uuid, waitedMs, clients: clients.map((c) => describeClient(c)) };
          if (a.force) this.log?.info('stop --force: dropping the clients', fields);
          else this.log?.warn('clients did not let go in time: dropping them', fields);
          call.emit({ event: 'dropping', clients, reason, waitedMs });
        },
      });
      dropped = byDevice.get(uuid) ?? [];
    }
    await removed;
    this.log?.info('device stopped', { uuid });
    const { socket: _gone, clients: _left, vnc: _closed, ...rest } = info;
    return { device: { ...rest, active: false }, dropped };
  }

  /**
   * Changes a definition: type, start mode, one attribute, or all of it from
   * a configuration. One transaction; a running device is not touched (the
   * change applies at its next start), as in mdevctl.
   */
  modify(a: ArgsOf<'modify'>): ResultOf<'modify'> {
    const uuid = normalizeUuid(a.uuid);
    let change: (def: MdevDefinition) => MdevDefinition;
    if (a.config !== undefined) {
      const others = (['type', 'auto', 'manual', 'addattr', 'value', 'delattr', 'index'] as const).filter((k) => a[k] !== undefined);
      if (others.length > 0) {
        throw new VfioError('EINVAL', `--jsonfile replaces the whole definition and cannot be combined with --${others[0]}`);
      }
      const config = this.configArg(a.config);
      change = (def) => {
        this.typeOf(def.parent, config.mdevType);
        return { ...def, ...config };
      };
    } else {
      checkModifyOptions(a);
      change = (def) => {
        const next = { ...def };
        if (a.type !== undefined) {
          this.typeOf(def.parent, a.type);
          next.mdevType = a.type;
        }
        if (a.auto) next.start = 'auto';
        if (a.manual) next.start = 'manual';
        if (a.addattr !== undefined) next.attrs = addAttr(def.attrs, { name: a.addattr, value: a.value! }, a.index);
        if (a.delattr) next.attrs = deleteAttr(def.attrs, a.index);
        return next;
      };
    }
    const def = this.store.update(uuid, a.parent, change);
    this.log?.info('device modified', { uuid, parent: def.parent, type: def.mdevType, start: def.start });
    return { device: this.infoOf(def, this.running(uuid, def.parent)) };
  }

  /**
   * Starts every sound definition marked auto whose parent is here. One
   * failure is logged and does not stop the others. Returns what started.
   */
  async autostart(): Promise<MdevDevice[]> {
    const listing = this.store.list();
    for (const p of listing.problems) this.log?.error('definition skipped', { error: p });
    const started: MdevDevice[] = [];
    for (const def of listing.definitions) {
      if (def.start !== 'auto') continue;
      try {
        const { device } = await this.start({ uuid: def.uuid, parent: def.parent });
        // Its driver may have unplugged it already: report only what still runs.
        const mdev = this.bus.device(device.uuid);
        if (mdev) started.push(mdev);
      } catch (err) {
        this.log?.error('auto-start failed', { uuid: def.uuid, parent: def.parent, error: err });
      }
    }
    return started;
  }

  // ---- helpers ---------------------------------------------------------------

  /** The definition `start -u UUID [-p P] [-t T]` means, if any. */
  private definitionToStart(uuid: string, parent: string | undefined, type: string | undefined): MdevDefinition | undefined {
    const listing = this.store.list({ uuid, parent });
    const count = listing.definitions.length + listing.problems.length;
    if (count === 0) return undefined;
    if (count > 1) throw new VfioError('EINVAL', `${uuid} is defined on several parents; name one with --parent`);
    if (listing.problems.length > 0) throw listing.problems[0]!;
    const def = listing.definitions[0]!;
    if (type !== undefined && type !== def.mdevType) {
      throw new VfioError('EINVAL', `${uuid} is defined on parent ${def.parent} with type ${def.mdevType}, not ${type}`);
    }
    return def;
  }

  /**
   * A running device as it runs (a definition modified since applies at the
   * next start), with its definition's start mode; `manual` when transient.
   */
  private runningInfo(m: MdevDevice): MdevInfo {
    const def = this.store.list({ uuid: m.uuid, parent: m.parent.name }).definitions[0];
    const attrs = Object.entries(m.attrs).map(([name, value]) => ({ name, value }));
    const info: MdevInfo = {
      uuid: m.uuid,
      parent: m.parent.name,
      mdevType: m.type.id,
      start: def?.start ?? 'manual',
      attrs,
      active: true,
      defined: def !== undefined,
    };
    const socket = this.server?.socketPath(m.uuid);
    if (socket !== undefined) {
      info.socket = socket;
      info.clients = this.server!.clients(m.uuid);
    }
    const vnc = this.vncAddress(m.uuid);
    if (vnc !== undefined) info.vnc = vnc;
    return info;
  }

  private running(uuid: string, parent: string): MdevDevice | undefined {
    const m = this.bus.device(uuid);
    return m && m.parent.name === parent ? m : undefined;
  }

  private liveParents(): MdevParent[] {
    return this.bus.parents().filter((p) => p.state === 'registered');
  }

  /** ENODEV naming the parents there are. */
  private parentNamed(name: string): MdevParent {
    const p = this.bus.parent(name);
    if (p && p.state === 'registered') return p;
    const known = this.liveParents().map((x) => x.name);
    throw new VfioError('ENODEV', `no parent ${JSON.stringify(name)} (parents: ${known.join(', ') || 'none'})`);
  }

  /** ENOENT naming the types the parent has. */
  private typeOf(parent: string, id: string): MdevType {
    const p = this.parentNamed(parent);
    const t = p.type(id);
    if (t) return t;
    throw new VfioError('ENOENT', `parent ${parent} has no type ${JSON.stringify(id)} (types: ${p.types.map((x) => x.id).join(', ')})`);
  }

  private configArg(config: unknown): MdevConfig {
    return parseConfig(config, 'configuration');
  }

  /** A definition, and whether (and where) it runs. */
  private infoOf(def: MdevDefinition, running: MdevDevice | undefined): MdevInfo {
    const info: MdevInfo = { ...def, active: running !== undefined, defined: true };
    const socket = running ? this.server?.socketPath(def.uuid) : undefined;
    if (socket !== undefined) {
      info.socket = socket;
      info.clients = this.server!.clients(def.uuid);
    }
    const vnc = running ? this.vncAddress(def.uuid) : undefined;
    if (vnc !== undefined) info.vnc = vnc;
    return info;
  }
}

/** mdevctl's rules for modify without --jsonfile. */
function checkModifyOptions(a: ArgsOf<'modify'>): void {
  if (a.type === undefined && !a.auto && !a.manual && a.addattr === undefined && !a.delattr) {
    throw new VfioError('EINVAL', 'nothing to modify: give --type, --auto, --manual, --addattr or --delattr (or --jsonfile)');
  }
  if (a.auto && a.manual) throw new VfioError('EINVAL', '--auto and --manual are mutually exclusive');
  if (a.addattr !== undefined && a.delattr) throw new VfioError('EINVAL', '--addattr and --delattr cannot be combined');
  if (a.addattr !== undefined && a.value === undefined) throw new VfioError('EINVAL', '--addattr needs --value');
  if (a.value !== undefined && a.addattr === undefined) throw new VfioError('EINVAL', '--value goes with --addattr');
  if (a.index !== undefined && a.addattr === undefined && !a.delattr) {
    throw new VfioError('EINVAL', '--index goes with --addattr or --delattr');
  }
}

/** define's and start's one attribute (--addattr NAME --value VALUE), as a list of attributes. */
function attrArg(a: { addattr?: string; value?: string }): MdevAttr[] {
  if (a.addattr === undefined && a.value === undefined) return [];
  if (a.addattr === undefined) throw new VfioError('EINVAL', '--value goes with --addattr');
  if (a.value === undefined) throw new VfioError('EINVAL', '--addattr needs --value');
  return [{ name: a.addattr, value: a.value }];
}
