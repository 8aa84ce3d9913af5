import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import {
  UART_FCR,
  UART_FIFO_SIZE,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_REG,
  Uart16550,
} from '../../src/drivers/mtty/uart.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

/** A UART that records every change of its interrupt output. */
function uart(): { u: Uart16550; edges: boolean[] } {
  const edges: boolean[] = [];
  const u = new Uart16550({ onInterruptChange: (a) => edges.push(a) });
  return { u, edges };
}

function iirId(u: Uart16550): number {
  return u.read(UART_REG.IIR) & UART_IIR.ID;
}

function send(u: Uart16550, text: string): void {
  for (const ch of text) u.write(UART_REG.TX, ch.charCodeAt(0));
}

function drain(u: Uart16550): string {
  let s = '';
  while (u.read(UART_REG.LSR) & UART_LSR.DR) s += String.fromCharCode(u.read(UART_REG.RX));
  return s;
}

test('power-on register values', () => {
  const { u } = uart();
  assert.equal(u.read(UART_REG.IER), 0);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.NO_INT, 'no interrupt, FIFOs off');
  assert.equal(u.read(UART_REG.LCR), 0);
  assert.equal(u.read(UART_REG.MCR), 0);
  assert.equal(u.read(UART_REG.LSR), UART_LSR.THRE | UART_LSR.TEMT);
  assert.equal(u.read(UART_REG.MSR), UART_MSR.DCD | UART_MSR.DSR | UART_MSR.CTS, 'far end ready, no changes');
  assert.equal(u.read(UART_REG.SCR), 0);
  assert.equal(u.interruptAsserted, false);
});

test('what is written to THR is read back from RBR, in order', () => {
  const { u } = uart();
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  send(u, 'hello');
  assert.equal(u.pendingBytes, 5);
  assert.equal(u.read(UART_REG.LSR), UART_LSR.DR, 'data ready, THR not empty');
  assert.equal(drain(u), 'hello');
  assert.equal(u.read(UART_REG.LSR), UART_LSR.THRE | UART_LSR.TEMT);
  assert.equal(u.read(UART_REG.RX), 'o'.charCodeAt(0), 'RBR keeps the last byte');
});

test('FIFO overflow: the 17th byte is dropped and OE is set until LSR is read', () => {
  const { u } = uart();
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  const bytes = Array.from({ length: UART_FIFO_SIZE + 1 }, (_, i) => 0x41 + i);
  for (const b of bytes) u.write(UART_REG.TX, b);
  assert.equal(u.pendingBytes, UART_FIFO_SIZE);
  assert.equal(u.read(UART_REG.LSR), UART_LSR.DR | UART_LSR.OE);
  assert.equal(u.read(UART_REG.LSR), UART_LSR.DR, 'OE cleared by the read');
  const got: number[] = [];
  while (u.read(UART_REG.LSR) & UART_LSR.DR) got.push(u.read(UART_REG.RX));
  assert.deepEqual(got, bytes.slice(0, UART_FIFO_SIZE));
});

test('without FIFOs the holding register keeps one byte and an overrun overwrites it', () => {
  const { u } = uart();
  u.write(UART_REG.TX, 0x31);
  u.write(UART_REG.TX, 0x32);
  assert.equal(u.pendingBytes, 1);
  assert.equal(u.read(UART_REG.LSR), UART_LSR.DR | UART_LSR.OE);
  assert.equal(u.read(UART_REG.RX), 0x32);
  assert.equal(u.read(UART_REG.LSR), UART_LSR.THRE | UART_LSR.TEMT);
});

test('FCR: enable bits in IIR, clearing, and toggling the enable empties the FIFO', () => {
  const { u } = uart();
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.FIFO_ENABLED | UART_IIR.NO_INT);
  send(u, 'abc');
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO | UART_FCR.CLEAR_RCVR);
  assert.equal(u.pendingBytes, 0);
  send(u, 'abc');
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO | UART_FCR.CLEAR_XMIT);
  assert.equal(u.pendingBytes, 0, 'one FIFO for both directions');
  send(u, 'abc');
  u.write(UART_REG.FCR, 0);
  assert.equal(u.pendingBytes, 0);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.NO_INT, 'FIFO bits gone');
  // With FIFOs off, clear bits are ignored.
  u.write(UART_REG.TX, 0x55);
  u.write(UART_REG.FCR, UART_FCR.CLEAR_RCVR);
  assert.equal(u.pendingBytes, 1);
});

test('DLAB switches offsets 0 and 1 to the divisor latch', () => {
  const { u } = uart();
  u.write(UART_REG.IER, UART_IER.RDI);
  u.write(UART_REG.LCR, UART_LCR.DLAB | 0x03);
  assert.equal(u.read(UART_REG.DLL), 12, '9600 baud after power-on');
  assert.equal(u.read(UART_REG.DLM), 0);
  u.write(UART_REG.DLL, 0x01);
  u.write(UART_REG.DLM, 0x02);
  assert.equal(u.read(UART_REG.DLL), 0x01);
  assert.equal(u.read(UART_REG.DLM), 0x02);
  assert.equal(u.pendingBytes, 0, 'DLL write is not a transmit');
  assert.equal(u.read(UART_REG.LCR), 0x83);
  u.write(UART_REG.LCR, 0x03);
  assert.equal(u.read(UART_REG.IER), UART_IER.RDI, 'IER untouched by the DLM write');
  u.write(UART_REG.TX, 0x7a);
  assert.equal(u.read(UART_REG.RX), 0x7a);
  u.write(UART_REG.LCR, UART_LCR.DLAB);
  assert.equal(u.read(UART_REG.DLL) | (u.read(UART_REG.DLM) << 8), 0x0201, 'divisor kept across DLAB');
});

test('IER keeps 4 bits; MCR keeps 5; SCR keeps 8; LSR and MSR ignore writes', () => {
  const { u } = uart();
  u.write(UART_REG.IER, 0xf0);
  assert.equal(u.read(UART_REG.IER), 0);
  u.write(UART_REG.MCR, 0xff);
  assert.equal(u.read(UART_REG.MCR), 0x1f);
  u.write(UART_REG.SCR, 0xa5);
  assert.equal(u.read(UART_REG.SCR), 0xa5);
  u.write(UART_REG.MCR, 0);
  u.read(UART_REG.MSR);
  u.write(UART_REG.LSR, 0xff);
  u.write(UART_REG.MSR, 0xff);
  assert.equal(u.read(UART_REG.LSR), UART_LSR.THRE | UART_LSR.TEMT);
  assert.equal(u.read(UART_REG.MSR), UART_MSR.DCD | UART_MSR.DSR | UART_MSR.CTS);
});

test('setting THRI while the FIFO is empty raises the THR-empty interrupt at once', () => {
  const { u, edges } = uart();
  u.write(UART_REG.IER, UART_IER.THRI);
  assert.deepEqual(edges, [true]);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.THRI);
  assert.deepEqual(edges, [true, false], 'reading IIR acknowledges it');
  assert.equal(u.read(UART_REG.IIR), UART_IIR.NO_INT);
  u.write(UART_REG.IER, UART_IER.THRI);
  assert.deepEqual(edges, [true, false, true], 'writing IER again re-raises it');
  u.write(UART_REG.TX, 0x41);
  assert.deepEqual(edges, [true, false, true, false], 'THR write clears it');
  u.read(UART_REG.RX);
  assert.deepEqual(edges, [true, false, true, false, true], 'FIFO emptied by the read: THR empty again');
  u.write(UART_REG.IER, 0);
  assert.deepEqual(edges.at(-1), false);
});

test('received data interrupt per byte; character timeout below the trigger level', () => {
  const { u, edges } = uart();
  u.write(UART_REG.IER, UART_IER.RDI);
  u.write(UART_REG.TX, 0x41);
  assert.deepEqual(edges, [true], 'trigger level 1 without FIFOs');
  assert.equal(u.read(UART_REG.IIR), UART_IIR.RDI);
  u.read(UART_REG.RX);
  assert.deepEqual(edges, [true, false]);
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO | 0x40); // trigger level 4
  send(u, 'ab');
  assert.equal(u.read(UART_REG.IIR), UART_IIR.FIFO_ENABLED | UART_IIR.RX_TIMEOUT);
  send(u, 'cd');
  assert.equal(u.read(UART_REG.IIR), UART_IIR.FIFO_ENABLED | UART_IIR.RDI);
  drain(u);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.FIFO_ENABLED | UART_IIR.NO_INT);
  assert.equal(u.interruptAsserted, false);
});

test('IIR reports sources in priority order: line status, data, THR empty, modem status', () => {
  const { u } = uart();
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  u.write(UART_REG.IER, UART_IER.RDI | UART_IER.THRI | UART_IER.RLSI | UART_IER.MSI);
  assert.equal(iirId(u), UART_IIR.THRI);
  u.write(UART_REG.IER, UART_IER.RDI | UART_IER.RLSI | UART_IER.MSI); // leave THR-empty for later
  for (let i = 0; i <= UART_FIFO_SIZE; i++) u.write(UART_REG.TX, i);
  u.write(UART_REG.MCR, UART_MCR.LOOP); // inputs change: modem status pending
  assert.equal(iirId(u), UART_IIR.RLSI);
  assert.equal(iirId(u), UART_IIR.RLSI, 'IIR read does not clear line status');
  u.read(UART_REG.LSR);
  assert.equal(iirId(u), UART_IIR.RDI);
  u.write(UART_REG.IER, UART_IER.RDI | UART_IER.RLSI | UART_IER.MSI | UART_IER.THRI);
  assert.equal(iirId(u), UART_IIR.RDI, 'data outranks THR empty');
  drain(u);
  assert.equal(iirId(u), UART_IIR.THRI, 'the read that emptied the FIFO raised THR empty');
  assert.equal(iirId(u), UART_IIR.MSI, 'acknowledged; modem status remains');
  u.read(UART_REG.MSR);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.FIFO_ENABLED | UART_IIR.NO_INT);
});

test('line status interrupt needs RLSI; overrun without it only shows in LSR', () => {
  const { u, edges } = uart();
  u.write(UART_REG.TX, 1);
  u.write(UART_REG.TX, 2);
  assert.deepEqual(edges, []);
  u.write(UART_REG.IER, UART_IER.RLSI);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.RLSI);
  u.read(UART_REG.LSR);
  assert.equal(u.read(UART_REG.IIR), UART_IIR.NO_INT);
  assert.deepEqual(edges, [true, false]);
});

test('MCR loopback drives the modem inputs and their change bits', () => {
  const { u, edges } = uart();
  u.write(UART_REG.IER, UART_IER.MSI);
  // The 8250 driver's loopback test: OUT2 | RTS must read back as DCD | CTS.
  u.write(UART_REG.MCR, UART_MCR.LOOP | UART_MCR.OUT2 | UART_MCR.RTS);
  assert.deepEqual(edges, [true]);
  assert.equal(u.read(UART_REG.MSR), UART_MSR.DCD | UART_MSR.CTS | UART_MSR.DDSR);
  assert.deepEqual(edges, [true, false], 'MSR read clears the change bits');
  assert.equal(u.read(UART_REG.MSR) & 0xf0, UART_MSR.DCD | UART_MSR.CTS);
  u.write(UART_REG.MCR, UART_MCR.LOOP | UART_MCR.OUT1 | UART_MCR.DTR);
  assert.equal(u.read(UART_REG.MSR), UART_MSR.RI | UART_MSR.DSR | UART_MSR.DDCD | UART_MSR.DCTS | UART_MSR.DDSR);
  u.write(UART_REG.MCR, UART_MCR.LOOP | UART_MCR.DTR);
  assert.equal(u.read(UART_REG.MSR), UART_MSR.DSR | UART_MSR.TERI, 'RI trailing edge');
  u.write(UART_REG.MCR, 0);
  assert.equal(u.read(UART_REG.MSR), UART_MSR.DCD | UART_MSR.DSR | UART_MSR.CTS | UART_MSR.DDCD | UART_MSR.DCTS);
  // Data still loops back in loopback mode.
  u.write(UART_REG.MCR, UART_MCR.LOOP);
  u.write(UART_REG.TX, 0x42);
  assert.equal(u.read(UART_REG.RX), 0x42);
});

test('the 8250 driver start-up checks see a 16550A that raises THRE', () => {
  const { u } = uart();
  // autoconfig: IER existence test.
  u.write(UART_REG.IER, 0);
  assert.equal(u.read(UART_REG.IER) & 0x0f, 0);
  u.write(UART_REG.IER, 0x0f);
  assert.equal(u.read(UART_REG.IER) & 0x0f, 0x0f);
  u.write(UART_REG.IER, 0);
  // FIFO type: 16550A reports both FIFO bits, and no 64-byte FIFO bit.
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  assert.equal(u.read(UART_REG.IIR) >> 6, 3);
  u.write(UART_REG.LCR, 0xbf);
  assert.notEqual(u.read(UART_REG.IIR), 0, 'no EFR at offset 2: not a 16650');
  u.write(UART_REG.LCR, 0);
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO | 0x20);
  assert.equal(u.read(UART_REG.IIR) & 0xe0, 0xc0, 'not a 16750');
  // XScale test: IER bit 6 does not stick.
  u.write(UART_REG.IER, 0x40);
  assert.equal(u.read(UART_REG.IER) & 0x40, 0);
  // serial8250_do_startup: THRE re-asserted after IER is toggled (UART_BUG_THRE)...
  u.write(UART_REG.IER, UART_IER.THRI);
  const iir1 = u.read(UART_REG.IIR);
  u.write(UART_REG.IER, 0);
  u.write(UART_REG.IER, UART_IER.THRI);
  const iir2 = u.read(UART_REG.IIR);
  u.write(UART_REG.IER, 0);
  assert.equal(iir1 & UART_IIR.NO_INT, 0);
  assert.equal(iir2 & UART_IIR.NO_INT, 0);
  // ...and TX interrupt when TEMT (UART_BUG_TXEN).
  u.write(UART_REG.IER, UART_IER.THRI);
  const lsr = u.read(UART_REG.LSR);
  const iir = u.read(UART_REG.IIR);
  u.write(UART_REG.IER, 0);
  assert.ok(lsr & UART_LSR.TEMT);
  assert.equal(iir & UART_IIR.NO_INT, 0);
});

test('a driver that fills the FIFO on THRE never overruns', () => {
  const { u } = uart();
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO | UART_FCR.CLEAR_RCVR | UART_FCR.CLEAR_XMIT | 0x80);
  u.write(UART_REG.IER, UART_IER.RDI | UART_IER.RLSI | UART_IER.THRI);
  const out = 'The quick brown fox jumps over the lazy dog, twice over: 0123456789';
  let sent = 0;
  let received = '';
  // The shape of serial8250_handle_irq: IIR, LSR, receive, then transmit on THRE.
  for (let rounds = 0; rounds < 100 && u.interruptAsserted; rounds++) {
    u.read(UART_REG.IIR);
    const lsr = u.read(UART_REG.LSR);
    assert.equal(lsr & UART_LSR.OE, 0);
    if (lsr & UART_LSR.DR) received += drain(u);
    if (lsr & UART_LSR.THRE) {
      for (let n = 0; n < UART_FIFO_SIZE && sent < out.length; n++) u.write(UART_REG.TX, out.charCodeAt(sent++));
      if (sent === out.length) u.write(UART_REG.IER, UART_IER.RDI | UART_IER.RLSI);
    }
  }
  assert.equal(received, out);
  assert.equal(u.interruptAsserted, false);
});

test('reset restores power-on state and drops the interrupt', () => {
  const { u, edges } = uart();
  u.write(UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  u.write(UART_REG.IER, 0x0f);
  u.write(UART_REG.LCR, 0x9b);
  u.write(UART_REG.DLL, 1);
  u.write(UART_REG.LCR, 0x1b);
  u.write(UART_REG.MCR, 0x1f);
  u.write(UART_REG.SCR, 0x55);
  send(u, 'xyz');
  assert.equal(u.interruptAsserted, true);
  u.reset();
  assert.equal(edges.at(-1), false);
  assert.equal(u.interruptAsserted, false);
  const fresh = new Uint8Array(8).map((_, i) => new Uart16550().read(i));
  const now = new Uint8Array(8).map((_, i) => u.read(i));
  assert.deepEqual(now, fresh);
  u.write(UART_REG.LCR, UART_LCR.DLAB);
  assert.equal(u.read(UART_REG.DLL), 12);
});

test('register offsets outside 0..7 are EINVAL', () => {
  const { u } = uart();
  assert.throws(() => u.read(8), EINVAL);
  assert.throws(() => u.write(-1, 0), EINVAL);
  assert.throws(() => u.read(1.5), EINVAL);
});
