/** `uvfio daemon` (and `npm start`): serve every parent until SIGINT/SIGTERM. */
import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { VfioError } from '../../base/errors.js';
import { parseListenAddress } from '../../console/listen-address.js';
import { Logger, logLevelFrom, stderrLogStyle } from '../../daemon/log.js';
import { limitsHelp, parseLimits } from '../../vfio-user/limits.js';
import { flag, str, strs, type Command } from '../args.js';
import { errorLine } from '../error-line.js';

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'serve devices (runs until SIGINT or SIGTERM)',
  synopsis: [
    'daemon [--http [ADDR:]PORT] [--no-vnc] [--no-defaults] [--mbochs-mem MIB] [--socket-group GROUP [--share-control]] [--shutdown-timeout MS] [--log-level LEVEL] [--log-format FORMAT] [--limit NAME=VALUE]...',
    'daemon --takeover [--detach] [OPTIONS AS ABOVE]',
  ],
  description: `Serve every parent: auto-start the definitions marked auto, put one
vfio-user socket per device under RUNTIME_DIR/devices, answer the command
line on RUNTIME_DIR/control.sock (mode 0600), and print each device's
socket and QEMU option. Logs go to stderr: human-readable lines on a
terminal, JSON lines otherwise (--log-format), each with its priority for
the journal under systemd. On SIGINT/SIGTERM, devices are removed properly
(clients are asked to let go, then named and dropped after
--shutdown-timeout) and the daemon exits 0.

On its very first start (a new, empty store) the daemon defines one
auto-start device of each parent's default type (mtty-1 on mtty, ...).

Sockets are the daemon's user's alone. --socket-group lets a QEMU that
runs as another user (libvirt's, say) attach: the runtime directory
becomes 0710 and devices/ 0750, both of that group, and each device
socket 0660 of that group; nothing is opened to anyone else. The daemon's
user must be a member of the group. The control socket stays 0600, since
whoever reaches it can start and stop devices, unless --share-control
gives the group that too.

Every display device (mdpy, mbochs) gets a read-only VNC server on
127.0.0.1, on a port the system picks ("uvfio list -v" shows it). With
--http the daemon also serves the web console: every device, its state and
its screen, live; "uvfio console" prints its URL with the access token.

Live takeover: "uvfio daemon --takeover", with the same directories and
options as the running daemon, starts a new daemon that replaces it while
VMs run. The two talk over RUNTIME_DIR/takeover.sock (mode 0600, the same
user only): the new one makes the same devices, the old one freezes and
hands over its listening sockets (devices and control), every client
connection with the bytes in flight, DMA mappings, interrupt eventfds and
each device's state (its migration stream; shared video memory is handed
over as is). Clients see only a pause. Until the new daemon commits, any
failure leaves the old one serving (the new one exits 1 naming the errno);
after it, the old one exits 0. A second takeover meanwhile is refused
(EBUSY); control requests wait until it is over. VNC servers listen anew,
on new ports, and the web console's token changes. --detach returns once
the new daemon serves, leaving it running: what systemd's ExecReload=
needs ("systemctl reload uvfio" upgrades in place).

Limits bound what a vfio-user client (a VMM, maybe a hostile one) may make
the daemon hold; set them with --limit NAME=VALUE. A request past one fails
with its errno and is logged naming the client. The limits:

${limitsHelp()}`,
  options: [
    {
      name: 'http',
      value: '[ADDR:]PORT',
      help: 'serve the web console on PORT (of 127.0.0.1 unless ADDR is given; 0 picks a free port)',
    },
    { name: 'no-vnc', help: 'serve no VNC (any local user can reach a loopback port)' },
    { name: 'no-defaults', help: 'do not define the default devices in a new store' },
    { name: 'mbochs-mem', value: 'MIB', help: "mbochs's video memory pool in MiB, shared by its devices (the kernel sample's mem=; default 256)" },
    { name: 'shutdown-timeout', value: 'MS', help: 'how long to wait for clients at shutdown (default 5000)' },
    {
      name: 'log-level',
      value: 'LEVEL',
      help: 'debug, info, warn or error (env UVFIO_LOG_LEVEL; default info)',
      complete: ['debug', 'info', 'warn', 'error'],
    },
    {
      name: 'socket-group',
      value: 'GROUP',
      help: 'share the device sockets with GROUP, a name or a gid (env UVFIO_SOCKET_GROUP)',
      complete: 'group',
    },
    { name: 'share-control', help: 'share the control socket with --socket-group too' },
    {
      name: 'log-format',
      value: 'FORMAT',
      help: 'human, json, or auto: human on a terminal, json otherwise (env UVFIO_LOG_FORMAT; default auto)',
      complete: ['auto', 'human', 'json'],
    },
    { name: 'takeover', help: 'replace the daemon serving these directories while its clients run (live takeover)' },
    { name: 'detach', help: 'with --takeover: exit 0 once the new daemon serves, leaving it running' },
    { name: 'limit', value: 'NAME=VALUE', multiple: true, help: 'set one of the limits above (repeatable); bytes take K, M, G or T' },
  ],
  examples: [
    { command: 'uvfio daemon', says: 'serve the default devices; print their sockets and QEMU options' },
    { command: 'uvfio daemon --http 8080', says: 'also serve the web console on 127.0.0.1:8080 ("uvfio console" prints its URL)' },
    { command: 'uvfio daemon --no-defaults --runtime-dir /tmp/uv', says: 'an empty daemon of its own, beside another one' },
    { command: 'uvfio daemon --socket-group kvm', says: "devices libvirt's QEMU (user libvirt-qemu, group kvm) can attach" },
    { command: 'uvfio daemon --limit dma-maps=1024 --limit data-xfer-size=256K', says: 'fewer DMA mappings per client, smaller transfers' },
  ],
  async run(ctx, v) {
    if (flag(v, 'detach')) {
      if (!flag(v, 'takeover')) throw new VfioError('EINVAL', '--detach goes with --takeover');
      const code = await detached(process.argv.slice(2).filter((a) => a !== '--detach'));
      if (code !== 0) ctx.fail([]);
      return;
    }
    const timeout = str(v, 'shutdown-timeout');
    if (timeout !== undefined && !/^\d+$/.test(timeout)) {
      throw new VfioError('EINVAL', `--shutdown-timeout: ${JSON.stringify(timeout)} is not a number of milliseconds`);
    }
    const limits = parseLimits(strs(v, 'limit'));
    const mbochsMem = str(v, 'mbochs-mem');
    if (mbochsMem !== undefined && !/^[1-9]\d{0,6}$/.test(mbochsMem)) {
      throw new VfioError('EINVAL', `--mbochs-mem: ${JSON.stringify(mbochsMem)} is not a number of MiB`);
    }
    const format = str(v, 'log-format') ?? (process.env.UVFIO_LOG_FORMAT || 'auto');
    if (format !== 'auto' && format !== 'human' && format !== 'json') {
      throw new VfioError('EINVAL', `--log-format: ${JSON.stringify(format)} is not one of auto, human, json`);
    }
    const groupName = str(v, 'socket-group') ?? (process.env.UVFIO_SOCKET_GROUP || undefined);
    if (flag(v, 'share-control') && groupName === undefined) {
      throw new VfioError('EINVAL', '--share-control shares the control socket with --socket-group: name the group');
    }
    const level = str(v, 'log-level') ?? process.env.UVFIO_LOG_LEVEL;
    if (level !== undefined && logLevelFrom(level) !== level) {
      throw new VfioError('EINVAL', `--log-level: ${JSON.stringify(level)} is not one of debug, info, warn, error`);
    }
    const httpText = str(v, 'http');
    const http = httpText === undefined ? undefined : parseListenAddress(httpText);
    const inject = process.env.UVFIO_TAKEOVER_FAIL || undefined;
    if (inject !== undefined && inject !== 'adopt' && inject !== 'exit' && inject !== 'hang') {
      throw new VfioError('EINVAL', `UVFIO_TAKEOVER_FAIL: ${JSON.stringify(inject)} is not one of adopt, exit, hang`);
    }
    const takeoverTimeout = process.env.UVFIO_TAKEOVER_TIMEOUT_MS || undefined;
    if (takeoverTimeout !== undefined && !/^\d+$/.test(takeoverTimeout)) {
      throw new VfioError('EINVAL', `UVFIO_TAKEOVER_TIMEOUT_MS: ${JSON.stringify(takeoverTimeout)} is not a number of milliseconds`);
    }
    // Loaded on demand: the other commands need none of the drivers or the server.
    const [{ runDaemon }, { builtinParents }, { resolveGroup }, { TakeoverFailed }] = await Promise.all([
      import('../../daemon/daemon.js'),
      import('../../daemon/parents.js'),
      import('../../daemon/socket-group.js'),
      import('../../daemon/take-over.js'),
    ]);
    const socketGroup = groupName === undefined ? undefined : resolveGroup(groupName);
    const code = await runDaemon({
      takeover: flag(v, 'takeover'),
      ...(takeoverTimeout === undefined ? {} : { takeoverTimeoutMs: Number(takeoverTimeout) }),
      injectTakeoverFailure: inject,
      // Everything is the next daemon's now: nothing is closed on the way out.
      onHandedOver: () => process.exit(0),
      onReady: () => tellReady(process.env.UVFIO_READY_FD),
      paths: ctx.paths,
      log: new Logger(undefined, logLevelFrom(level), {}, stderrLogStyle(format)),
      parents: builtinParents({ mbochsPoolBytes: mbochsMem === undefined ? undefined : Number(mbochsMem) * 1024 * 1024 }),
      seedDefaults: !flag(v, 'no-defaults'),
      ...(http === undefined ? {} : { http }),
      vnc: !flag(v, 'no-vnc'),
      shutdownTimeoutMs: timeout === undefined ? undefined : Number(timeout),
      limits,
      ...(socketGroup === undefined ? {} : { socketGroup, shareControl: flag(v, 'share-control') }),
      print: (text) => ctx.print(text),
    }).catch((err: unknown) => {
      // Not committed: what this process holds are duplicates of what the
      // running daemon serves with; closing them by hand could unlink its
      // sockets or ring its clients' eventfds. Exit as is.
      if (err instanceof TakeoverFailed) {
        process.stderr.write(errorLine(err));
        process.exit(1);
      }
      throw err;
    });
    if (code !== 0) ctx.fail([]);
    // Everything is closed; should some handle linger anyway, it must not keep a stopped daemon alive.
    setTimeout(() => process.exit(code), 1_000).unref();
  },
};

/**
 * Runs `uvfio ARGS` (a daemon) in a session of its own, its stderr ours,
 * and resolves 0 once it says it serves (a line on the pipe named by
 * UVFIO_READY_FD), leaving it running; its exit status if it ends first.
 */
function detached(args: string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
    env: { ...process.env, UVFIO_READY_FD: '3' },
  });
  return new Promise((resolve) => {
    const ready = child.stdio[3] as Readable;
    ready.once('data', () => {
      ready.destroy();
      child.unref();
      resolve(0);
    });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

/** Tells the process that ran us with --detach that we serve. */
function tellReady(fdText: string | undefined): void {
  if (fdText === undefined || !/^\d+$/.test(fdText)) return;
  const fd = Number(fdText);
  try {
    writeSync(fd, 'ready\n');
    closeSync(fd);
  } catch {
    // it went away: nobody to tell
  }
}
