/**
 * The Node floor: raw_server's answers given from Node's event loop, with
 * the least JavaScript a server there can run, through uvfio's native
 * layer as uvfio's server uses it. Each readable event is one call into
 * JavaScript (the native watcher's read-ahead brings the first bytes with
 * it), after which the callback lingers for the next requests (FdWatcher
 * linger, as UnixSocket.setLinger, backing off as it does); each reply is one `sendmsg`; no
 * framing library, no session, no device: like raw_server, a REGION_READ
 * answers from a 1 MiB buffer and a REGION_WRITE's data is read and
 * dropped. What uvfio costs over this is uvfio's own; what this costs over
 * raw_server is Node's (its loop, the crossings between C++ and
 * JavaScript).
 *
 * Listens on every SOCKET given, any number of clients each. Prints
 * "ready" once they listen; runs until SIGTERM.
 *
 *   node dist/bench/node-floor.js SOCKET...
 */
import { FdWatcher, READABLE, WRITABLE, runPendingWork, setReadAheadBuffer } from '../src/native/fd-watcher.js';
import { acceptUnix, close, listenUnix, recvmsg, sendmsg, sendmsg2, sendmsgWait } from '../src/native/syscalls.js';
import { ERRNO } from '../src/base/errors.js';
import { Command, HeaderFlags, PROTOCOL_MAJOR, PROTOCOL_MINOR, Size } from '../src/vfio-user/protocol.js';
import { lingerBackoff } from '../src/vfio-user/transport/linger-backoff.js';

const HEADER: number = Size.HEADER;
/** Header and access struct: all a reply needs of a request. */
const HEAD: number = Size.HEADER + Size.REGION_ACCESS;
const EINVAL = ERRNO.EINVAL;
/** Reads per readable event, as uvfio's socket allows. */
const READS_PER_EVENT = 16;
/** How long the rest of a large reply may wait for the client to read it, as uvfio's sockets allow (microseconds). */
const SEND_WAIT_US = 1000;
/** Requests read while lingering after an event, as uvfio's server allows. */
const LINGER_READS = 16;

/** Filled, as raw_server's: untouched pages would all be the kernel's one zero page, always in cache. */
const bar = new Uint8Array(1 << 20).map((_, i) => (i * 7 + 1) & 0xff);
const rx = new Uint8Array(64 * 1024);
/** Where a write's data and a long VERSION's JSON go: read and dropped, as raw_server does. */
const sink = new Uint8Array(bar.length);
setReadAheadBuffer(rx, rx);
const caps = new TextEncoder().encode('{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}\0');
const version = new Uint8Array(Size.VERSION + caps.length);
new DataView(version.buffer).setUint16(0, PROTOCOL_MAJOR, true);
new DataView(version.buffer).setUint16(2, PROTOCOL_MINOR, true);
version.set(caps, Size.VERSION);
const none = new Uint8Array(0);

/** Reads of at most this many bytes are copied into the reply; longer ones go out as a second iovec. */
const SMALL = 64;
const rxView = new DataView(rx.buffer);

class Connection {
  readonly #fd: number;
  readonly #watcher: FdWatcher;
  /** The current request's first HEAD bytes, when they came in pieces, and how many are in. */
  readonly #head = new Uint8Array(HEAD);
  readonly #headView = new DataView(this.#head.buffer);
  #have = 0;
  /** Bytes of the current request still to come. */
  #left = HEADER;
  readonly #reply = new Uint8Array(HEAD + SMALL);
  readonly #replyView = new DataView(this.#reply.buffer);
  /** #reply's first n bytes for every n: a small reply makes no view. */
  readonly #replies = Array.from({ length: HEAD + SMALL + 1 }, (_, n) => this.#reply.subarray(0, n));
  /** The reply being sent when the socket filled: its two parts and how far it went. */
  #out: [Uint8Array, Uint8Array] | null = null;
  #sent = 0;
  /** Bytes read after a request whose reply waits for room: taken once it went. */
  #stash: Uint8Array | null = null;
  #closed = false;
  /** A reply went since the last read began (lingering follows answers only, as uvfio's sockets). */
  #answered = false;

  constructor(fd: number) {
    this.#fd = fd;
    this.#watcher = new FdWatcher(fd, (events, received) => this.#onEvents(events, received));
    this.#watcher.readAhead(rx.length);
    this.#watcher.start(READABLE);
  }

  #onEvents(events: number, received: number | undefined): void {
    if (events & WRITABLE) {
      if (!this.#flush()) return;
      const stash = this.#stash;
      this.#stash = null;
      if (stash === null || this.#take(stash, new DataView(stash.buffer), stash.length)) this.#watcher.start(READABLE);
      return;
    }
    // As uvfio's client sockets do (UnixSocket.setLinger): after the event's
    // reads answered, wait for the next request in the same turn of the loop.
    this.#answered = false;
    if (!this.#read(received) || !this.#answered || !lingerBackoff.tryNow()) return;
    for (let lingers = 0; lingers < LINGER_READS && this.#answered; lingers++) {
      this.#answered = false;
      const r = this.#watcher.linger(runPendingWork());
      if (r === false || r === null) {
        lingerBackoff.busy();
        return;
      }
      lingerBackoff.got();
      if (!this.#read(r === true ? undefined : typeof r === 'number' ? r : r[0])) return;
    }
  }

  /** One readable event's reads (the first made by the watcher when `received` is given); true when they emptied the socket. */
  #read(received: number | undefined): boolean {
    let into = rx;
    let n = received ?? recvmsg(this.#fd, rx);
    for (let reads = 1; ; reads++) {
      if (n === 0) return this.#close();
      if (n < 0) return true;
      if (!(into === rx ? this.#take(rx, rxView, n) : this.#skip(n))) return false;
      if (n < into.length) return true;
      if (reads === READS_PER_EVENT) return false;
      // A long body past its head goes straight to the sink, at its place
      // there, as raw_server receives it whole (always at the sink's start,
      // its reads would find the same few cache-hot pages each time).
      into = this.#have === HEAD && this.#left > 0 ? this.#bodyRest() : rx;
      n = recvmsg(this.#fd, into);
    }
  }

  /** Where the rest of the current request's body goes in the sink: after what came of it. */
  #bodyRest(): typeof sink {
    const at = this.#headView.getUint32(4, true) - HEAD - this.#left;
    return sink.subarray(at, at + this.#left);
  }

  /** Consumes from[0, n); false once a reply waits for room (reading stops until it is sent) or the connection closed. */
  #take(from: Uint8Array, view: DataView, n: number): boolean {
    let at = 0;
    while (at < n) {
      const size = this.#have === 0 && n - at >= HEADER ? view.getUint32(at + 4, true) : 0;
      if (size >= HEADER && at + size <= n) {
        // The common case: the whole request is in the chunk; answer from there.
        at += size;
        if (!this.#answer(view, at - size)) return this.#wait(from, at, n);
        continue;
      }
      const want = Math.min(this.#left, n - at);
      if (this.#have < HEAD) {
        const copy = Math.min(want, HEAD - this.#have);
        this.#head.set(from.subarray(at, at + copy), this.#have);
        this.#have += copy;
      }
      at += want;
      this.#left -= want;
      if (this.#have === HEADER && this.#left === 0) {
        this.#left = this.#headView.getUint32(4, true) - HEADER;
        if (this.#left < 0) return this.#close();
      }
      if (this.#left === 0 && !this.#finish()) return this.#wait(from, at, n);
    }
    return true;
  }

  /** A reply waits for room: keeps from[at, n) for later; false. */
  #wait(from: Uint8Array, at: number, n: number): false {
    if (at < n && !this.#closed) this.#stash = from.slice(at, n);
    return false;
  }

  /** n bytes of the current request's body went to the sink; false once a reply waits for room. */
  #skip(n: number): boolean {
    this.#left -= n;
    return this.#left > 0 || this.#finish();
  }

  /** The current request, its head gathered in #head, is in: answers it and starts the next; false if the reply waits. */
  #finish(): boolean {
    this.#have = 0;
    this.#left = HEADER;
    return this.#answer(this.#headView, 0);
  }

  /** Answers the request whose head is at view[at, at + HEAD); false if the socket filled or closed. */
  #answer(view: DataView, at: number): boolean {
    const cmd = view.getUint16(at + 2, true);
    const size = view.getUint32(at + 4, true);
    if (view.getUint32(at + 8, true) & HeaderFlags.NO_REPLY) return true;
    const r = this.#replyView;
    let length = HEADER;
    let body = none;
    let error = 0;
    if (cmd === Command.VERSION) {
      body = version;
    } else if ((cmd === Command.REGION_READ || cmd === Command.REGION_WRITE) && size >= HEAD) {
      const offset = view.getUint32(at + 16, true) + view.getUint32(at + 20, true) * 2 ** 32;
      const count = view.getUint32(at + 28, true);
      if (offset + count > bar.length || (cmd === Command.REGION_WRITE && size - HEAD !== count)) {
        error = EINVAL;
      } else {
        for (let i = HEADER; i < HEAD; i += 4) r.setUint32(i, view.getUint32(at + i, true), true);
        length = HEAD;
        if (cmd === Command.REGION_READ && count <= SMALL) {
          for (let i = 0; i < count; i++) this.#reply[HEAD + i] = bar[offset + i]!; // no view to make
          length += count;
        } else if (cmd === Command.REGION_READ) {
          body = bar.subarray(offset, offset + count);
        }
      }
    } else {
      error = EINVAL;
    }
    r.setUint16(0, view.getUint16(at, true), true);
    r.setUint16(2, cmd, true);
    r.setUint32(4, length + body.length, true);
    r.setUint32(8, HeaderFlags.TYPE_REPLY | (error ? HeaderFlags.ERROR : 0), true);
    r.setUint32(12, error, true);
    this.#out = [this.#replies[length]!, body];
    this.#sent = 0;
    this.#answered = true;
    if (this.#flush()) return true;
    if (!this.#closed) this.#watcher.start(WRITABLE);
    return false;
  }

  /** Sends what is left of #out; true once all of it went. */
  #flush(): boolean {
    const [head, body] = this.#out!;
    const total = head.length + body.length;
    for (;;) {
      let n: number;
      try {
        if (body.length === 0) n = sendmsg(this.#fd, this.#sent === 0 ? head : head.subarray(this.#sent));
        else if (this.#sent < head.length) n = sendmsg2(this.#fd, head.subarray(this.#sent), body);
        else n = sendmsg(this.#fd, body.subarray(this.#sent - head.length));
      } catch {
        this.#close(); // the client left (EPIPE, ECONNRESET)
        return false;
      }
      if (n < 0) return false;
      this.#sent += n;
      if (this.#sent < total && n > 0) {
        // As uvfio's sockets send the rest of a large write (UnixSocket): a blocking send, within the same budget.
        const sent = this.#sent;
        let rest: number;
        try {
          rest = sendmsgWait(this.#fd, head.subarray(Math.min(sent, head.length)), body.subarray(Math.max(0, sent - head.length)), SEND_WAIT_US);
        } catch {
          this.#close();
          return false;
        }
        if (rest > 0) this.#sent += rest;
      }
      if (this.#sent === total) {
        this.#out = null;
        return true;
      }
    }
  }

  #close(): false {
    if (!this.#closed) {
      this.#closed = true;
      this.#watcher.close();
      close(this.#fd);
    }
    return false;
  }
}

const paths = process.argv.slice(2);
if (paths.length === 0) {
  process.stderr.write('usage: node-floor.js SOCKET...\n');
  process.exit(2);
}
const listeners = paths.map((path) => {
  const fd = listenUnix(path);
  const watcher = new FdWatcher(fd, () => {
    const client = acceptUnix(fd);
    if (client >= 0) new Connection(client);
  });
  watcher.start(READABLE);
  return watcher;
});
process.on('SIGTERM', () => {
  for (const w of listeners) w.close();
  process.exit(0);
});
process.stdout.write('ready\n');
