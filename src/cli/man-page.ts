/**
 * uvfio(1), in roff, made from the same descriptions as `--help`
 * (args.ts). `uvfio help --man` prints it; man/man1/uvfio.1 in the repository is
 * its output, and a test keeps the two equal.
 */
import { COMMON_OPTIONS, type Command, type OptionDoc } from './args.js';

/** Text made safe for roff: backslashes, dashes, and lines that would read as requests. */
function esc(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** Paragraphs (blank-line separated) as roff paragraphs. */
function paragraphs(text: string): string[] {
  return text
    .trim()
    .split(/\n\s*\n/)
    .flatMap((p, i) => [...(i === 0 ? [] : ['.PP']), esc(p.trim())]);
}

function optionItem(o: OptionDoc): string[] {
  const short = o.short === undefined ? '' : `\\-${o.short}, `;
  const value = o.value === undefined ? '' : ` \\fI${esc(o.value)}\\fR`;
  return ['.TP', `.B ${short}\\-\\-${esc(o.name)}${value}`, esc(o.help)];
}

function commandSection(c: Command): string[] {
  const out = [`.SS "uvfio ${c.name}"`, '.nf', ...c.synopsis.map((s) => `\\fBuvfio\\fR ${esc(s)}`), '.fi', '.PP', ...paragraphs(c.description)];
  for (const o of c.options) if (!o.hidden) out.push(...optionItem(o));
  if (c.examples.length > 0) {
    out.push('.PP', 'Examples:');
    for (const e of c.examples) out.push('.RS', '.nf', `\\fB${esc(e.command)}\\fR`, '.fi', '.RS', esc(e.says), '.RE', '.RE');
  }
  return out;
}

/** The whole page. */
export function manPage(commands: readonly Command[], version: string): string {
  const out = [
    `.TH UVFIO 1 "" "uvfio ${esc(version)}" "User Commands"`,
    // Option names and paths must not be broken across lines.
    '.nh',
    '.SH NAME',
    'uvfio \\- emulated PCI devices served to virtual machines over vfio\\-user, managed like mdevctl',
    '.SH SYNOPSIS',
    '.B uvfio',
    '.I COMMAND',
    '[\\fIOPTIONS\\fR]',
    '.SH DESCRIPTION',
    ...paragraphs(`uvfio is the Linux VFIO device framework rebuilt in userspace. Its daemon
serves emulated PCI devices (mtty serial cards, mdpy and mbochs displays)
each on a UNIX socket of its own, which QEMU attaches as a vfio-user-pci
device; the other commands manage those devices the way mdevctl manages
mediated devices: types, definitions kept in a database, start and stop.

Every command talks to the daemon through RUNTIME_DIR/control.sock;
define, undefine, modify and list --defined also work without a daemon.
Every mistake is one line "uvfio: ..." on standard error.`),
    '.SH COMMANDS',
    ...commands.flatMap(commandSection),
    '.SH COMMON OPTIONS',
    ...COMMON_OPTIONS.flatMap(optionItem),
    '.SH ENVIRONMENT',
    ...envItem('UVFIO_RUNTIME_DIR', 'the runtime directory, when --runtime-dir is not given'),
    ...envItem('UVFIO_STATE_DIR', 'the state directory, when --state-dir is not given'),
    ...envItem('UVFIO_LOG_LEVEL', "the daemon's log level, when --log-level is not given"),
    '.SH FILES',
    ...envItem('RUNTIME_DIR/control.sock', 'the control socket the commands talk to (mode 0600)'),
    ...envItem('RUNTIME_DIR/devices/UUID.sock', "a running device's vfio-user socket"),
    ...envItem('STATE_DIR/uvfio.db', 'the definitions (SQLite)'),
    '.SH EXIT STATUS',
    '0 on success; 1 on any failure, said in one line on standard error.',
    '.SH SEE ALSO',
    '.BR mdevctl (8),',
    '.BR qemu\\-system\\-x86_64 (1)',
  ];
  return `${out.join('\n')}\n`;
}

function envItem(name: string, text: string): string[] {
  return ['.TP', `.B ${esc(name)}`, esc(text)];
}
