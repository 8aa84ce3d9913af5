/**
 * e2e check of a trace (`uvfio trace --json`) of an mtty card while the
 * guest's 8250 driver took its ports and the guest test looped bytes
 * through them: the driver's register accesses must be there, named, in
 * the order drivers/tty/serial/8250 makes them.
 *
 *     node dist/test/e2e/uart-probe.js FILE PORTS
 *
 * What the guest's kernel (7.2) really does, as the trace shows it and
 * 8250_core.c/8250_port.c explain it:
 * - registration (uart_configure_port): the port's type comes without a
 *   register probe, so autoconfig's IER test (IER 00, then 0f) and its
 *   scratch test never run; the one access is set_mctrl(0): MCR = 00;
 * - open (serial8250_do_startup): serial8250_clear_fifos (FCR 01, 07, 00),
 *   the interrupt registers read (LSR, RBR, IIR, MSR), the THRE test (IER
 *   THRI, IIR read, IER 00), 8 data bits (LCR 03), the modem lines (MCR);
 * - set_termios: the divisor with LCR's DLAB set (LCR 8x, DLL, DLM), then
 *   LCR without DLAB, the FIFOs (FCR), receive interrupts on (IER RDI);
 *   stty's 115200 baud is divisor 1 (DLL 01);
 * - the guest test's bytes: written to THR, read back from RBR, the same.
 *
 * Prints UART-PROBE-OK or UART-PROBE-FAIL per port; exits 1 on a failure.
 */
import { readFileSync } from 'node:fs';
import type { TraceLine, TraceMessage } from '../../src/daemon/trace-record.js';

/** One register access of one port: `W LCR 80`. */
interface Access {
  write: boolean;
  reg: string;
  value: number;
}

/** One expected access: direction, register, and a test of the value (any when absent). */
interface Step {
  what: string;
  write: boolean;
  reg: string;
  value?: (v: number) => boolean;
}

const is = (n: number) => (v: number) => v === n;
const W = (reg: string, value?: (v: number) => boolean, what = `${reg} write`): Step => ({ what, write: true, reg, value });
const R = (reg: string, what = `${reg} read`): Step => ({ what, write: false, reg });

/** The driver's accesses, in order (a subsequence of what the trace holds). */
const EXPECTED: Step[] = [
  W('MCR', is(0x00), 'registration: set_mctrl(0), MCR 00'),
  W('FCR', is(0x01), 'startup: clear_fifos FCR 01'),
  W('FCR', is(0x07), 'startup: clear_fifos FCR 07'),
  W('FCR', is(0x00), 'startup: clear_fifos FCR 00'),
  R('LSR', 'startup: clear interrupts, LSR'),
  R('RBR', 'startup: clear interrupts, RBR'),
  R('IIR', 'startup: clear interrupts, IIR'),
  R('MSR', 'startup: clear interrupts, MSR'),
  W('IER', is(0x02), 'startup: THRE test, IER THRI'),
  R('IIR', 'startup: THRE test, IIR'),
  W('IER', is(0x00), 'startup: THRE test, IER 00'),
  W('LCR', is(0x03), 'startup: 8 data bits, LCR 03'),
  W('MCR', undefined, 'startup: modem lines, MCR'),
  W('LCR', (v) => (v & 0x80) !== 0, 'set_termios: LCR with DLAB'),
  W('DLL', undefined, 'set_termios: divisor low, DLL'),
  W('DLM', undefined, 'set_termios: divisor high, DLM'),
  W('LCR', (v) => (v & 0x80) === 0, 'set_termios: LCR without DLAB'),
  W('FCR', (v) => (v & 0x01) !== 0, 'set_termios: FIFOs on, FCR'),
  W('IER', (v) => (v & 0x01) !== 0, 'set_termios: receive interrupts on, IER RDI'),
  W('DLL', is(0x01), 'stty 115200: divisor 1, DLL 01'),
  W('THR', undefined, "the guest test's first byte, THR"),
  R('RBR', 'the byte looped back, RBR'),
];

function accessesOf(lines: TraceLine[], port: number): Access[] {
  const prefix = `port${port} `;
  return lines
    .filter(
      (l): l is TraceMessage =>
        l.type === 'message' && (l.cmd === 'REGION_WRITE' || l.cmd === 'REGION_READ') && l.register?.startsWith(prefix) === true,
    )
    .filter((m) => m.errno === 0 && typeof m.fields.data === 'string' && m.fields.count === 1)
    .map((m) => ({ write: m.cmd === 'REGION_WRITE', reg: m.register!.slice(prefix.length), value: parseInt(String(m.fields.data), 16) }));
}

/** Null when `steps` occur in `accesses` in order; else the first one missing. */
function missing(accesses: Access[], steps: Step[]): Step | null {
  let at = 0;
  for (const step of steps) {
    let found = false;
    while (at < accesses.length && !found) {
      const a = accesses[at++]!;
      found = a.write === step.write && a.reg === step.reg && (step.value === undefined || step.value(a.value));
    }
    if (!found) return step;
  }
  return null;
}

/** The bytes written to THR and those read from RBR while data was ready, as text. */
function loopback(accesses: Access[]): { sent: string; got: string } {
  let sent = '';
  let got = '';
  let ready = false;
  for (const a of accesses) {
    if (!a.write && a.reg === 'LSR') ready = (a.value & 0x01) !== 0;
    if (a.write && a.reg === 'THR') sent += String.fromCharCode(a.value);
    if (!a.write && a.reg === 'RBR' && ready) got += String.fromCharCode(a.value);
  }
  return { sent, got };
}

const show = (a: Access) => `${a.write ? 'W' : 'R'} ${a.reg} ${a.value.toString(16).padStart(2, '0')}`;

function main(): number {
  const [file, portsArg] = process.argv.slice(2);
  if (file === undefined) {
    console.error('usage: uart-probe.js FILE PORTS');
    return 2;
  }
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TraceLine);
  let failed = false;
  for (let port = 0; port < Number(portsArg ?? '1'); port++) {
    const accesses = accessesOf(lines, port);
    const gap = missing(accesses, EXPECTED);
    const { sent, got } = loopback(accesses);
    const problems: string[] = [];
    if (gap !== null) problems.push(`no "${gap.what}" where the driver makes it (${accesses.length} accesses)`);
    if (!sent.includes('uvfio-mtty-')) problems.push(`THR never carried the guest test's message (sent ${JSON.stringify(sent.slice(0, 40))})`);
    else if (got !== sent) problems.push(`RBR gave back ${JSON.stringify(got.slice(0, 40))}…, THR took ${JSON.stringify(sent.slice(0, 40))}…`);
    const autoconfig = accesses.some((a) => a.write && a.reg === 'IER' && a.value === 0x0f);
    if (problems.length > 0) {
      failed = true;
      console.log(`UART-PROBE-FAIL port${port}: ${problems.join('; ')}; first accesses: ${accesses.slice(0, 40).map(show).join(', ')}`);
    } else {
      console.log(
        `UART-PROBE-OK port${port}: ${EXPECTED.length} driver steps in order in ${accesses.length} accesses; ${sent.length} bytes looped back; ` +
          `autoconfig IER test ${autoconfig ? 'seen' : 'not run (the port was typed without a probe)'}`,
      );
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main();
