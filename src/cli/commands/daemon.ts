/** `uvfio daemon` (and `npm start`): serve every parent until SIGINT/SIGTERM. */
import { VfioError } from '../../base/errors.js';
import { Logger, logLevelFrom } from '../../daemon/log.js';
import { limitsHelp, parseLimits } from '../../vfio-user/limits.js';
import { flag, str, strs, type Command } from '../args.js';

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'serve devices (runs until SIGINT or SIGTERM)',
  help: `Usage: uvfio daemon [--no-defaults] [--shutdown-timeout MS] [--log-level LEVEL] [--limit NAME=VALUE]...

Serve every parent: auto-start the definitions marked auto, put one
vfio-user socket per device under RUNTIME_DIR/devices, answer the command
line on RUNTIME_DIR/control.sock (mode 0600), and print each device's
socket and QEMU option. Logs are JSON lines on stderr. On SIGINT/SIGTERM,
devices are removed properly (clients are asked to let go, then dropped
after --shutdown-timeout) and the daemon exits 0.

On its very first start (a new, empty store) the daemon defines one
auto-start device of each parent's default type (mtty-1 on mtty, ...).

      --no-defaults            do not define the default devices in a new store
      --shutdown-timeout MS    how long to wait for clients at shutdown (default 5000)
      --log-level LEVEL        debug, info, warn or error (env UVFIO_LOG_LEVEL; default info)
      --limit NAME=VALUE       set one of the limits below (repeatable); bytes take K, M, G, T

Limits: what a vfio-user client (a VMM, maybe hostile) may make the daemon
hold. A request past one fails with its errno and is logged naming the client.
${limitsHelp()}`,
  options: {
    'no-defaults': { type: 'boolean' },
    'shutdown-timeout': { type: 'string' },
    'log-level': { type: 'string' },
    limit: { type: 'string', multiple: true },
  },
  async run(ctx, v) {
    const timeout = str(v, 'shutdown-timeout');
    if (timeout !== undefined && !/^\d+$/.test(timeout)) {
      throw new VfioError('EINVAL', `--shutdown-timeout: ${JSON.stringify(timeout)} is not a number of milliseconds`);
    }
    const limits = parseLimits(strs(v, 'limit'));
    const level = str(v, 'log-level') ?? process.env.UVFIO_LOG_LEVEL;
    if (level !== undefined && logLevelFrom(level) !== level) {
      throw new VfioError('EINVAL', `--log-level: ${JSON.stringify(level)} is not one of debug, info, warn, error`);
    }
    // Loaded on demand: the other commands need none of the drivers or the server.
    const [{ runDaemon }, { builtinParents }] = await Promise.all([import('../../daemon/daemon.js'), import('../../daemon/parents.js')]);
    const code = await runDaemon({
      paths: ctx.paths,
      log: new Logger(undefined, logLevelFrom(level)),
      parents: builtinParents(),
      seedDefaults: !flag(v, 'no-defaults'),
      shutdownTimeoutMs: timeout === undefined ? undefined : Number(timeout),
      limits,
      print: ctx.print,
    });
    if (code !== 0) ctx.fail([]);
    // Everything is closed; should some handle linger anyway, it must not keep a stopped daemon alive.
    setTimeout(() => process.exit(code), 1_000).unref();
  },
};
