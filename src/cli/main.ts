#!/usr/bin/env node
/**
 * `uvfio`: the command line (mdevctl's verbs) and the daemon. Every
 * failure is one line, `uvfio: <sentence>`, on stderr, and exit status 1.
 */
import { createRequire } from 'node:module';
import { VfioError } from '../base/errors.js';
import { resolvePaths } from '../daemon/paths.js';
import { COMMON_HELP, parseVerbArgs, str, type Command } from './args.js';
import { makeContext } from './context.js';
import { errorLine } from './error-line.js';
import { consoleCommand } from './commands/console.js';
import { daemonCommand } from './commands/daemon.js';
import { defineCommand } from './commands/define.js';
import { listCommand } from './commands/list.js';
import { modifyCommand } from './commands/modify.js';
import { startCommand } from './commands/start.js';
import { screenshotCommand } from './commands/screenshot.js';
import { stopCommand } from './commands/stop.js';
import { typesCommand } from './commands/types.js';
import { undefineCommand } from './commands/undefine.js';

const COMMANDS: readonly Command[] = [
  daemonCommand,
  typesCommand,
  listCommand,
  defineCommand,
  undefineCommand,
  startCommand,
  stopCommand,
  modifyCommand,
  screenshotCommand,
  consoleCommand,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: uvfio COMMAND [OPTIONS]

Emulated PCI devices served to VMs over vfio-user, managed like mdevctl.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "uvfio COMMAND --help" for a command's options.
${COMMON_HELP}
`;
}

function version(): string {
  const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };
  return pkg.version;
}

/** Runs one command line; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  const print = (text: string) => void process.stdout.write(text);
  const printError = (text: string) => void process.stderr.write(text);
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '-h' || verb === '--help' || verb === 'help') {
    (verb === undefined ? printError : print)(usage());
    return verb === undefined ? 1 : 0;
  }
  if (verb === '-V' || verb === '--version') {
    print(`uvfio ${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === verb);
  if (!command) {
    throw new VfioError('EINVAL', `unknown command ${JSON.stringify(verb)} (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
  }
  const values = parseVerbArgs(command, rest);
  if (values.help === true) {
    print(`${command.help}\n\n${COMMON_HELP}\n`);
    return 0;
  }
  const paths = resolvePaths({ runtimeDir: str(values, 'runtime-dir'), stateDir: str(values, 'state-dir') });
  const ctx = makeContext(paths, print, printError);
  await command.run(ctx, values);
  return ctx.failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(errorLine(err));
    process.exitCode = 1;
  },
);
