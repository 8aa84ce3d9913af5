#!/usr/bin/env node
/**
 * `uvfio`: the command line (mdevctl's verbs) and the daemon. Every
 * failure is one line, `uvfio: <sentence>`, on stderr, and exit status 1.
 */
import { resolvePaths } from '../daemon/paths.js';
import { parseVerbArgs, str } from './args.js';
import { COMMANDS } from './commands/index.js';
import { unknownCommand } from './commands/help.js';
import { makeContext } from './context.js';
import { errorLine } from './error-line.js';
import { helpText, usageText } from './help.js';
import { uvfioVersion } from './version.js';

/** Runs one command line; resolves with the exit status. */
async function main(argv: string[]): Promise<number> {
  const print = (text: string) => void process.stdout.write(text);
  const printError = (text: string) => void process.stderr.write(text);
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '-h' || verb === '--help') {
    (verb === undefined ? printError : print)(usageText(COMMANDS));
    return verb === undefined ? 1 : 0;
  }
  if (verb === '-V' || verb === '--version') {
    print(`uvfio ${uvfioVersion()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === verb);
  if (!command) throw unknownCommand(verb, COMMANDS);
  const { values, operands } = parseVerbArgs(command, rest);
  if (values.help === true) {
    print(helpText(command));
    return 0;
  }
  const paths = resolvePaths({ runtimeDir: str(values, 'runtime-dir'), stateDir: str(values, 'state-dir') });
  const ctx = makeContext(paths, print, printError);
  await command.run(ctx, values, operands);
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
