/** `uvfio help [COMMAND]`: the list of commands, one command's page, or with --man the man page. */
import { VfioError } from '../../base/errors.js';
import { flag, type Command } from '../args.js';
import { helpText, usageText } from '../help.js';
import { manPage } from '../man-page.js';
import { uvfioVersion } from '../version.js';

/** The help verb over `commands` (which includes it). */
export function helpCommand(commands: readonly Command[]): Command {
  return {
    name: 'help',
    summary: "show a command's options and examples",
    synopsis: ['help [COMMAND]', 'help --man'],
    description: `Without a COMMAND, list the commands; with one, show its options and
examples (as "uvfio COMMAND --help" does). --man prints the uvfio(1) man
page, made from the same text.`,
    options: [{ name: 'man', help: 'print the man page (roff) instead' }],
    operand: { name: 'COMMAND', complete: 'verb' },
    examples: [
      { command: 'uvfio help stop', says: "stop's options and examples" },
      { command: 'uvfio help --man | man -l -', says: 'read the manual page' },
    ],
    async run(ctx, v, [verb]) {
      if (flag(v, 'man')) {
        if (verb !== undefined) throw new VfioError('EINVAL', 'help --man prints the whole page: give no COMMAND');
        ctx.print(manPage(commands, uvfioVersion()));
        return;
      }
      if (verb === undefined) {
        ctx.print(usageText(commands));
        return;
      }
      const command = commands.find((c) => c.name === verb);
      if (!command) throw unknownCommand(verb, commands);
      ctx.print(helpText(command));
    },
  };
}

/** EINVAL naming the commands there are. */
export function unknownCommand(verb: string, commands: readonly Command[]): VfioError {
  return new VfioError('EINVAL', `unknown command ${JSON.stringify(verb)} (commands: ${commands.map((c) => c.name).join(', ')})`);
}
