/**
 * A client process for the kill -9 test: it connects to the socket named
 * on its command line, maps DMA memory (memfd and message-backed), hands
 * over interrupt eventfds, says "ready" and waits to be killed. Run without
 * arguments (say, by a test runner globbing the folder) it does nothing.
 */
import { PciIrq } from '../../src/base/uapi.js';
import { VfioUserClient } from '../../src/vfio-user/index.js';

const path = process.argv[2];
if (path !== undefined) {
  const client = await VfioUserClient.connect(path, { twinSocket: process.argv[3] === 'twin' });
  await client.dmaMapMemory(0x100000, 0x10000);
  await client.dmaMapMessages(0x200000, new Uint8Array(0x1000));
  await client.setIrqEventfds(PciIrq.MSIX, 0, 8);
  await client.setIrqEventfds(PciIrq.REQ, 0, 1);
  process.stdout.write('ready\n');
  setInterval(() => {}, 1 << 30);
}
