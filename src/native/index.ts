/**
 * uvfio's native layer: the few system calls Node lacks (fd passing, mmap,
 * eventfd, fd readiness) and the small objects built on them.
 */
export {
  acceptUnix,
  close,
  connectUnix,
  dup,
  eventfd,
  eventfdRead,
  eventfdSignal,
  EventfdSignal,
  eventfdWrite,
  listenUnix,
  memfdCreate,
  memoryFdInfo,
  TMPFS_MAGIC,
  F_SEAL_SHRINK,
  F_SEAL_GROW,
  type MemoryFdInfo,
  mmap,
  munmap,
  peerCredentials,
  recvmsg,
  sealSize,
  sendmsg,
  sendmsg2,
  sendmsgWait,
  recvmsgWait,
  setNonblocking,
  setSendBufferSize,
  socketPair,
  type EventfdFlags,
} from './syscalls.js';
export {
  AnswerStat,
  FdWatcher,
  READABLE,
  WRITABLE,
  runPendingWork,
  setReadAheadBuffer,
  type AnswerRegion,
  type FdWatcherCallback,
  type FdWatcherConstructor,
} from './fd-watcher.js';
export { closeFds } from './close-fds.js';
export { EventFd } from './eventfd.js';
export { MappedMemory, ClientMemory, CLIENT_WINDOW, type Protection } from './memory.js';
export { openFdCount } from './fd-count.js';
export { notifyDatagram } from './notify.js';
export { preadNoWait } from './file-io.js';
