/**
 * The help texts, made from the commands' descriptions (args.ts): the list
 * of verbs (`uvfio --help`) and one verb's page (`uvfio help VERB`,
 * `uvfio VERB --help`).
 */
import { COMMON_OPTIONS, type Command, type OptionDoc } from './args.js';

/** The option column: `-u, --uuid UUID` / `    --json`. */
export function optionLabel(o: OptionDoc): string {
  const long = `--${o.name}${o.value === undefined ? '' : ` ${o.value}`}`;
  return o.short === undefined ? `    ${long}` : `-${o.short}, ${long}`;
}

/** Options as two columns, hidden ones left out. */
function optionLines(options: readonly OptionDoc[]): string[] {
  const shown = options.filter((o) => !o.hidden);
  const width = Math.max(20, ...shown.map((o) => optionLabel(o).length)) + 2;
  return shown.map((o) => `  ${optionLabel(o).padEnd(width)}${o.help}`);
}

/** Common options, as every page ends. */
export function commonHelp(): string {
  return ['Common options:', ...optionLines(COMMON_OPTIONS)].join('\n');
}

/** `uvfio --help`: the verbs, one line each. */
export function usageText(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `Usage: uvfio COMMAND [OPTIONS]

Emulated PCI devices served to VMs over vfio-user, managed like mdevctl.

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "uvfio help COMMAND" for a command's options and examples.

${commonHelp()}
`;
}

/** One verb's page: synopsis, description, options, examples, common options. */
export function helpText(command: Command): string {
  const out: string[] = [];
  command.synopsis.forEach((s, i) => out.push(`${i === 0 ? 'Usage: ' : '       '}uvfio ${s}`));
  out.push('', command.description.trim());
  const options = optionLines(command.options);
  if (options.length > 0) out.push('', 'Options:', ...options);
  if (command.examples.length > 0) {
    out.push('', 'Examples:');
    for (const e of command.examples) out.push(`  ${e.command}`, `      ${e.says}`);
  }
  out.push('', commonHelp());
  return `${out.join('\n')}\n`;
}
