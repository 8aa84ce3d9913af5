/**
 * The one table of what a vfio-user client may make the server hold: every
 * limit's name on the command line (`uvfio daemon --limit NAME=VALUE`), its
 * scope (one message, one client, the whole server), its default and what
 * it bounds. The server enforces exactly these values, and its VERSION
 * reply advertises those the protocol can carry (max_msg_fds,
 * max_data_xfer_size, max_dma_maps), so what a client is told is what it
 * gets. README's "Security model" shows the same table.
 *
 * A limit is added here, with its field in ResourceLimits, and enforced
 * where the resource is taken; nothing else is needed for the flag, the
 * help text and the defaults to follow.
 */
import { readFileSync } from 'node:fs';
import { KeptFiles } from '../iommufd/fd-backing.js';
import { Budget } from '../base/budget.js';
import { VfioError } from '../base/errors.js';
import { CapabilityDefault } from './protocol.js';

/** How a limit's value is written: a plain count, bytes (K/M/G/T suffixes), or milliseconds. */
export type LimitUnit = 'count' | 'bytes' | 'ms';

/** What one unit of the limit covers. */
export type LimitScope = 'message' | 'client' | 'device' | 'server';

/** Every limit's value; see LIMITS for what each bounds. */
export interface ResourceLimits {
  /** fds the server accepts in one message (its max_msg_fds) */
  maxMsgFds: number;
  /** data bytes the server accepts in one message (its max_data_xfer_size) */
  maxDataXferSize: number;
  /** DMA mappings one client may hold at once (its max_dma_maps) */
  maxDmaMaps: number;
  /** how long a client may take to answer a DMA_READ/DMA_WRITE */
  dmaTimeoutMs: number;
  /** DMA mappings of all clients together */
  maxDmaMapsTotal: number;
  /** bytes of one client's memory mapped into the daemon */
  maxDmaBytes: number;
  /** bytes of all clients' memory mapped into the daemon */
  maxDmaBytesTotal: number;
  /** interrupt eventfds one client holds (SET_IRQS) */
  maxIrqFds: number;
  /** fds held for all clients together: interrupt eventfds, DMA memory fds */
  maxClientFds: number;
  /** clients connected to one device at once */
  maxDeviceClients: number;
  /** clients connected to the whole server at once */
  maxClients: number;
  /** how long a client has, from connecting, to complete VFIO_USER_VERSION */
  versionTimeoutMs: number;
  /** how long VERSION and teardown wait for the client's command line to be read */
  cmdlineTimeoutMs: number;
  /** reply bytes waiting for one client to read them */
  replyQueueBytes: number;
  /** command bytes received from one client and waiting their turn */
  requestQueueBytes: number;
}

/** One row of the table. */
export interface LimitSpec {
  /** The name in `--limit NAME=VALUE`. */
  readonly name: string;
  readonly unit: LimitUnit;
  readonly scope: LimitScope;
  readonly min: number;
  readonly max: number;
  readonly default: number;
  /** How the default is said when it depends on the host (the README's words); else formatLimit(default). */
  readonly defaultText?: string;
  /** What it bounds and what a client past it gets: one sentence for --help and the README. */
  readonly doc: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const TiB = 1024 * 1024 * MiB;

/** vm.max_map_count: how many memory mappings the process may have (65530 if unreadable). */
function maxMapCount(): number {
  try {
    const n = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8').trim());
    if (Number.isSafeInteger(n) && n > 0) return n;
  } catch {
    // not Linux's /proc: the kernel's default
  }
  return 65530;
}

/** This process's open-file limit (the soft one: Node raises it to the hard one at start); 1024 if unreadable. */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m !== null) return Number(m[1]);
  } catch {
    // not Linux's /proc: the common default
  }
  return 1024;
}

/** The table. Keys are ResourceLimits' fields; order is the order of the help text. */
export const LIMITS: { readonly [K in keyof ResourceLimits]: LimitSpec } = {
  maxMsgFds: {
    name: 'msg-fds',
    unit: 'count',
    scope: 'message',
    min: 1,
    // QEMU's client refuses a server whose max_msg_fds is above 16.
    max: 16,
    default: 16,
    doc: 'file descriptors one message may carry (VERSION max_msg_fds)',
  },
  maxDataXferSize: {
    name: 'data-xfer-size',
    unit: 'bytes',
    scope: 'message',
    min: 4 * KiB,
    max: 64 * MiB,
    default: CapabilityDefault.MAX_DATA_XFER_SIZE,
    doc: 'data bytes of one region or DMA transfer (VERSION max_data_xfer_size); a longer message ends the session',
  },
  maxDmaMaps: {
    name: 'dma-maps',
    unit: 'count',
    scope: 'client',
    min: 1,
    // QEMU's client refuses a server whose max_dma_maps is above 65535.
    max: CapabilityDefault.MAX_DMA_MAPS,
    default: CapabilityDefault.MAX_DMA_MAPS,
    doc: 'DMA mappings one client holds at once (VERSION max_dma_maps); ENOSPC past it',
  },
  dmaTimeoutMs: {
    name: 'dma-timeout',
    unit: 'ms',
    scope: 'message',
    min: 1,
    max: 3_600_000,
    default: 5_000,
    doc: 'milliseconds a client may take to answer a DMA_READ or DMA_WRITE; the access then fails with ETIMEDOUT',
  },
  maxDmaMapsTotal: {
    name: 'dma-maps-total',
    unit: 'count',
    scope: 'server',
    min: 1,
    max: 1 << 30,
    default: Math.max(1, Math.floor(maxMapCount() / 4)),
    defaultText: 'a quarter of vm.max_map_count',
    doc: 'DMA mappings of all clients together; each one of memory mapped into the daemon is a memory map of its own, and vm.max_map_count of them would crash it; ENOSPC past it',
  },
  maxDmaBytes: {
    name: 'dma-bytes',
    unit: 'bytes',
    scope: 'client',
    min: 4 * KiB,
    max: Number.MAX_SAFE_INTEGER,
    default: TiB,
    doc: "bytes of one client's memory mapped into the daemon (size-sealed memfds); ENOSPC past it",
  },
  maxDmaBytesTotal: {
    name: 'dma-bytes-total',
    unit: 'bytes',
    scope: 'server',
    min: 4 * KiB,
    max: Number.MAX_SAFE_INTEGER,
    default: 16 * TiB,
    doc: "bytes of all clients' memory mapped into the daemon (its address space is 128 TiB); ENOSPC past it",
  },
  maxIrqFds: {
    name: 'irq-fds',
    unit: 'count',
    scope: 'client',
    min: 1,
    max: 1 << 20,
    default: 256,
    doc: 'interrupt eventfds one client has handed over (SET_IRQS) and not replaced; ENOSPC past it',
  },
  maxClientFds: {
    name: 'client-fds',
    unit: 'count',
    scope: 'server',
    min: 1,
    max: 1 << 30,
    default: Math.max(1, Math.floor(openFileLimit() / 2)),
    defaultText: 'half the open-file limit',
    doc: 'file descriptors held for all clients together (interrupt eventfds, fds of the client memory they mapped); ENOSPC past it, so the daemon keeps fds for its own sockets',
  },
  maxDeviceClients: {
    name: 'device-clients',
    unit: 'count',
    scope: 'device',
    min: 1,
    max: 4096,
    default: 8,
    doc: 'clients connected to one device at once; a connection past it is closed at once',
  },
  maxClients: {
    name: 'clients',
    unit: 'count',
    scope: 'server',
    min: 1,
    max: 65_536,
    default: 256,
    doc: 'clients connected to all devices together; a connection past it is closed at once',
  },
  versionTimeoutMs: {
    name: 'version-timeout',
    unit: 'ms',
    scope: 'client',
    min: 1,
    max: 3_600_000,
    default: 5_000,
    doc: 'milliseconds a client has, from connecting, to complete VFIO_USER_VERSION before it is dropped (one that has not is also dropped at once when its device goes away)',
  },
  cmdlineTimeoutMs: {
    name: 'cmdline-timeout',
    unit: 'ms',
    scope: 'client',
    min: 1,
    max: 60_000,
    default: 1_000,
    doc: "milliseconds VERSION and teardown wait for the client's command line (/proc/PID/cmdline, which its process can make slow to read) to be read; past it they go on and the client is shown without one",
  },
  replyQueueBytes: {
    name: 'reply-queue',
    unit: 'bytes',
    scope: 'client',
    min: 64 * KiB,
    max: 1024 * MiB,
    default: 4 * MiB,
    doc: 'reply bytes waiting for the client to read them; past it the daemon serves and reads nothing more of that client until they drain',
  },
  requestQueueBytes: {
    name: 'request-queue',
    unit: 'bytes',
    scope: 'client',
    min: 64 * KiB,
    max: 1024 * MiB,
    default: 4 * MiB,
    doc: 'bytes of commands received and waiting their turn (each counted with 128 bytes of overhead); past it the daemon stops reading that client, and drops it at 4 times this if it must keep reading (its DMA replies are awaited on the same socket)',
  },
};

/** Every limit at its default. */
export const DEFAULT_LIMITS: Readonly<ResourceLimits> = Object.freeze(
  Object.fromEntries(Object.entries(LIMITS).map(([k, spec]) => [k, spec.default])) as unknown as ResourceLimits,
);

const SUFFIX: Record<string, number> = { '': 1, K: KiB, M: MiB, G: 1024 * MiB, T: TiB };

/** The field a `--limit` name stands for, or undefined. */
export function limitKey(name: string): keyof ResourceLimits | undefined {
  for (const [key, spec] of Object.entries(LIMITS)) if (spec.name === name) return key as keyof ResourceLimits;
  return undefined;
}

/**
 * Parses `NAME=VALUE` arguments (bytes may end in K, M, G or T, powers of
 * 1024) into the limits they set; later ones win. EINVAL, naming the
 * argument, for an unknown name, a malformed value or one out of range.
 */
export function parseLimits(args: readonly string[]): Partial<ResourceLimits> {
  const out: Partial<ResourceLimits> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const key = limitKey(name);
    if (key === undefined) {
      throw new VfioError('EINVAL', `--limit ${JSON.stringify(arg)}: no limit is named ${JSON.stringify(name)} (see "uvfio daemon --help")`);
    }
    const spec = LIMITS[key];
    const text = eq < 0 ? '' : arg.slice(eq + 1);
    const m = (spec.unit === 'bytes' ? /^(\d+)([KMGT]?)$/ : /^(\d+)()$/).exec(text);
    const value = m === null ? NaN : Number(m[1]) * SUFFIX[m[2]!]!;
    if (!Number.isSafeInteger(value)) {
      throw new VfioError('EINVAL', `--limit ${name}: ${JSON.stringify(text)} is not ${UNIT_WORDS[spec.unit]}`);
    }
    if (value < spec.min || value > spec.max) {
      throw new VfioError(
        'EINVAL',
        `--limit ${name}: ${formatLimit(spec, value)} is outside ${formatLimit(spec, spec.min)} to ${formatLimit(spec, spec.max)}`,
      );
    }
    out[key] = value;
  }
  return out;
}

const UNIT_WORDS: Record<LimitUnit, string> = {
  count: 'a whole number',
  bytes: 'a number of bytes (a whole number, optionally followed by K, M, G or T)',
  ms: 'a whole number of milliseconds',
};

/** How the help and the README say a scope. */
export const SCOPE_WORDS: Record<LimitScope, string> = {
  message: 'per message',
  client: 'per client',
  device: 'per device',
  server: 'for the whole daemon',
};

/** A limit's value as a user writes it: `16`, `1M`, `5000` (milliseconds). */
export function formatLimit(spec: LimitSpec, value: number): string {
  if (spec.unit !== 'bytes') return String(value);
  for (const s of ['T', 'G', 'M', 'K']) {
    if (value >= SUFFIX[s]! && value % SUFFIX[s]! === 0) return `${value / SUFFIX[s]!}${s}`;
  }
  return String(value);
}

/** A limit's default as the help and the README say it (in words when it depends on the host). */
export function defaultWords(spec: LimitSpec): string {
  return spec.defaultText ?? formatLimit(spec, spec.default);
}

/**
 * The limits for `uvfio daemon --help` and the man page: each with its
 * default, its scope and what it bounds, one paragraph each.
 */
export function limitsHelp(): string {
  return Object.values(LIMITS)
    .map((spec) => `  ${spec.name} (default ${defaultWords(spec)})\n      ${SCOPE_WORDS[spec.scope]}: ${spec.doc}`)
    .join('\n\n');
}

/** One client's budgets: its shares of the daemon's. */
export class ClientBudgets {
  /** interrupt eventfds held for the client (`irq-fds` inside `client-fds`) */
  readonly irqFds: Budget;
  /** fds kept to reach its memory (the daemon's `client-fds` itself) */
  readonly fds: Budget;
  /** the files of its mapped memory, one fd kept per file (in `fds`) */
  readonly files: KeptFiles;
  /** bytes of its memory mapped here (`dma-bytes` inside `dma-bytes-total`) */
  readonly mappedBytes: Budget;
  readonly #server: ServerBudgets;

  /** @internal */
  constructor(server: ServerBudgets, limits: ResourceLimits) {
    this.#server = server;
    this.irqFds = new Budget('irq-fds', limits.maxIrqFds, server.clientFds);
    this.fds = server.clientFds;
    this.files = new KeptFiles(server.clientFds);
    this.mappedBytes = new Budget('dma-bytes', limits.maxDmaBytes, server.dmaBytes);
  }

  /** Its DMA mappings, `max` as negotiated (`dma-maps` inside `dma-maps-total`). */
  dmaMaps(max: number): Budget {
    return new Budget('dma-maps', max, this.#server.dmaMaps);
  }
}

/**
 * The daemon-wide budgets of one server, made from its limits, and each
 * new client's budgets inside them.
 */
export class ServerBudgets {
  /** fds held for all clients together */
  readonly clientFds: Budget;
  /** DMA mappings of all clients together */
  readonly dmaMaps: Budget;
  /** bytes of client memory mapped here, all clients together */
  readonly dmaBytes: Budget;
  /** clients connected to the server */
  readonly clients: Budget;
  readonly #deviceClients = new WeakMap<object, Budget>();

  constructor(private readonly limits: ResourceLimits) {
    this.clientFds = new Budget('client-fds', limits.maxClientFds);
    this.dmaMaps = new Budget('dma-maps-total', limits.maxDmaMapsTotal);
    this.dmaBytes = new Budget('dma-bytes-total', limits.maxDmaBytesTotal);
    this.clients = new Budget('clients', limits.maxClients, null, 'EUSERS');
  }

  /** The clients of one device (`device-clients` inside `clients`), by the device object. */
  deviceClients(device: object): Budget {
    let b = this.#deviceClients.get(device);
    if (b === undefined) this.#deviceClients.set(device, (b = new Budget('device-clients', this.limits.maxDeviceClients, this.clients, 'EUSERS')));
    return b;
  }

  /** A new client's budgets. */
  client(): ClientBudgets {
    return new ClientBudgets(this, this.limits);
  }
}
