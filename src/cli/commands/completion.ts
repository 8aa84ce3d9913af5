/** `uvfio completion bash|zsh`: the shell completion script. */
import { VfioError } from '../../base/errors.js';
import type { Command } from '../args.js';
import { bashCompletion, zshCompletion } from '../completion.js';

const SHELLS = ['bash', 'zsh'] as const;

/** The completion verb over `commands` (which includes it). */
export function completionCommand(commands: readonly Command[]): Command {
  return {
    name: 'completion',
    summary: 'print the shell completion script for bash or zsh',
    synopsis: ['completion bash', 'completion zsh'],
    description: `Print a script that completes uvfio's commands, options, and values
(the UUIDs of running and defined devices, parents, types) in the shell
named. Load it at once with 'source <(uvfio completion bash)', or install
it where the shell looks for completions.`,
    options: [],
    operand: { name: 'SHELL', complete: SHELLS },
    examples: [
      { command: 'uvfio completion bash > /usr/share/bash-completion/completions/uvfio', says: 'install it for every bash user' },
      { command: 'source <(uvfio completion zsh)', says: 'complete uvfio in this zsh' },
    ],
    async run(ctx, _v, [shell]) {
      if (shell === 'bash') ctx.print(bashCompletion(commands));
      else if (shell === 'zsh') ctx.print(zshCompletion(commands));
      else
        throw new VfioError(
          'EINVAL',
          `completion needs a shell: ${SHELLS.join(' or ')}${shell === undefined ? '' : `, not ${JSON.stringify(shell)}`}`,
        );
    },
  };
}
