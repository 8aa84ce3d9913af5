// FdWatcher: readiness of any fd, delivered through Node's own event loop
// (a libuv uv_poll_t), so sockets, eventfds and listeners cost no thread.
// A socket's watcher may also make its owner's first read (read-ahead):
// then a message costs one call into JavaScript, not two.
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <unordered_set>

#include "answer.h"
#include "common.h"
#include "receive.h"

namespace uvfio {

namespace {

// Fds with an open watcher on this thread's loop. libuv keeps one epoll
// slot per fd and does not check at uv_poll_init: a second watcher would
// silently steal the first one's events.
thread_local std::unordered_set<int> watched_fds;

// The buffer every read-ahead goes into (setReadAheadBuffer). Sockets
// share it because what is read there is handed over at once and only
// valid during the callback; the reference keeps its memory alive. Its
// owner is the one module that may set it: a second copy of the transport
// in the same thread would otherwise find its bytes in the first's buffer.
struct ReadAheadBuffer {
  napi_ref ref = nullptr;
  void* data = nullptr;
  size_t len = 0;
};
thread_local ReadAheadBuffer read_ahead_buffer;
thread_local napi_ref read_ahead_owner = nullptr;

// What linger() runs pending JavaScript work under: a callback scope needs
// a resource object and an async context; one of each per thread.
thread_local napi_ref linger_resource = nullptr;
thread_local napi_async_context linger_context = nullptr;

// When the loop's next timer is due, for linger()'s wait: a timerfd armed
// only when that time changes. A timeout given to poll() itself would arm
// and cancel a kernel timer on every wait, which costs as much as the loop
// turn linger saves. Made with the module (so it is there before anyone
// counts the process's fds), closed with it; -1 if that failed: linger then
// waits with a timeout. armed_at: the loop time it is armed for,
// UINT64_MAX: not armed.
thread_local int linger_timer = -1;
thread_local uint64_t linger_armed_at = UINT64_MAX;

struct Watcher {
  uv_poll_t poll;
  napi_env env;
  int fd;
  // The JS object: strong while polling (an active watcher must not be
  // collected, however little of it the program keeps), weak otherwise.
  napi_ref self = nullptr;
  // Weak; the JS object holds the function in a property. A strong native
  // reference would root the closure and, through it, the object: a cycle
  // no GC could break for a watcher that was merely stopped.
  napi_ref callback = nullptr;
  int events = 0;        // what the poll runs with; 0 when stopped
  size_t read_ahead = 0; // bytes of the shared buffer read first when readable; 0: none
  bool closing = false;  // uv_close called
  bool closed = false;   // uv_close completed
  bool js_gone = false;  // JS object finalized
  bool linger_gone = false;  // its linger function finalized (it may outlive the object)
  Answers* answers = nullptr;  // region accesses linger may answer itself (answer()); null: none
};

// Freed once libuv and V8 are done with it, in whichever order.
void MaybeFree(Watcher* w) {
  if (w->closed && w->js_gone && w->linger_gone) delete w;
}

void OnClosed(uv_handle_t* handle) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  w->closed = true;
  MaybeFree(w);
}

void SetEvents(Watcher* w, int events) {
  if (w->events == 0 && events != 0) napi_reference_ref(w->env, w->self, nullptr);
  if (w->events != 0 && events == 0) napi_reference_unref(w->env, w->self, nullptr);
  w->events = events;
}

void BeginClose(Watcher* w) {
  if (w->closing) return;
  w->closing = true;
  DeleteAnswers(w->env, w->answers);
  w->answers = nullptr;
  watched_fds.erase(w->fd);
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
}

// What a receive of the read-ahead gives the callback: out[0] the bytes
// read (0 at EOF) or -1 when none were; out[1] the fds that came (an
// array), the VfioError of a failed read, or undefined.
void ReadAheadResult(napi_env env, ssize_t n, int err, const int* fds, size_t nfds, napi_value* out) {
  napi_create_int32(env, n < 0 ? -1 : static_cast<int32_t>(n), &out[0]);
  napi_get_undefined(env, &out[1]);
  if (n < 0 && err != EAGAIN && err != EWOULDBLOCK) {
    if (napi_value error = ErrnoValue(env, err, "recvmsg", err == EMSGSIZE ? kLostFdsDetail : nullptr)) {
      out[1] = error;
    }
  } else if (nfds > 0) {
    napi_create_array_with_length(env, nfds, &out[1]);
    for (size_t i = 0; i < nfds; i++) {
      napi_value v;
      napi_create_int32(env, fds[i], &v);
      napi_set_element(env, out[1], i, v);
    }
  }
}

bool WaitForLoop(uv_loop_t* loop);

// What reading ahead (and answering) came to.
enum class Served {
  kBusy,      // a wait ended for other work (or the fd is not watched): nothing read
  kReadable,  // the fd is readable and there is no read-ahead to make
  kAnswered,  // every read allowed was answered whole (or the byte cap was met, or a reply left a rest)
  kRead,      // a read for the owner (Received): its bytes at the buffer's start
};

struct Received {
  ssize_t n = -1;
  int err = EAGAIN;
  int fds[kMaxFds];
  size_t nfds = 0;
};

// Skips the native linger of readable events for a while after one found
// the loop busy, as LingerBackoff does for the owner's lingers: 1, 3, 7 ...
// up to 255 events, halving with each linger that got its bytes.
thread_local WaitBackoff event_backoff;

// Reads ahead into the shared buffer and, with answer_reads > 0 and
// answers set, answers the region accesses it may (answer.h), up to
// answer_reads reads answered whole and kAnswerBytesPerLinger bytes. Waits
// for the loop (WaitForLoop) first when `wait`, and before each read after
// one answered whole with a reply when `wait_more` (else it reads on only
// after a full read). `backoff`, when given, hears how each wait went.
Served Serve(Watcher* w, bool wait, int32_t answer_reads, bool wait_more, Received* rcv, WaitBackoff* backoff) {
  size_t answered_bytes = 0;
  const ReadAheadBuffer& rx = read_ahead_buffer;
  for (;;) {
    if (wait) {
      bool woke = !w->closing && (w->events & UV_READABLE) != 0 && WaitForLoop(w->poll.loop);
      if (!woke) {
        if (backoff != nullptr) backoff->Busy();
        return Served::kBusy;
      }
    }
    if (w->read_ahead == 0 || rx.data == nullptr) {
      struct pollfd self = {w->fd, POLLIN, 0};
      bool readable = poll(&self, 1, 0) > 0 && (self.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
      return readable ? Served::kReadable : Served::kBusy;
    }
    size_t len = std::min(w->read_ahead, rx.len);
    Answers* a = answer_reads > 0 ? w->answers : nullptr;
    if (a != nullptr && a->place_next && len >= kPlaceHead) len = kPlaceHead;
    rcv->nfds = 0;
    rcv->n = ReceiveWithFds(w->fd, rx.data, len, rcv->fds, &rcv->nfds);
    rcv->err = errno;
    if (rcv->n < 0 && (rcv->err == EAGAIN || rcv->err == EWOULDBLOCK) && rcv->nfds == 0) {
      // An event with nothing to read: the owner hears so, as before,
      // unless reads here were answered (then it has nothing to do).
      if (!wait) return answered_bytes > 0 ? Served::kAnswered : Served::kRead;
      if (backoff != nullptr) backoff->Busy();
      return Served::kBusy;  // the loop woke for another fd
    }
    if (wait && backoff != nullptr) backoff->Got();
    if (rcv->n <= 0 || rcv->nfds > 0 || a == nullptr) return Served::kRead;
    uint8_t* bytes = static_cast<uint8_t*>(rx.data);
    size_t n = static_cast<size_t>(rcv->n);
    int send_err = 0;
    double replies = a->stats[kRepliesOut];
    uint32_t count = 0;
    // A head read alone (place_next, or the owner reading heads first after
    // a large message) may be a write whose data goes in place.
    uint8_t* to = n == kPlaceHead && len == kPlaceHead ? PlaceOf(*a, bytes, &count) : nullptr;
    if (to != nullptr) {
      // The data straight into its place: what is there for a write that
      // fits one read, else what comes within kPlaceWaitUs (as the client
      // writes it; skipped for a while after a wait ran out). Unless all of
      // it came (and no fds), the owner gets the head: with what came after
      // it in the buffer when it fits, else told it landed (kLandedBytes).
      bool fits = count <= rx.len - kPlaceHead;
      bool wait_data = !fits && a->place_waits.TryNow();
      ssize_t got;
      int err = 0;
      if (wait_data) {
        bool eof;
        got = ReceiveWait(w->fd, to, count, kPlaceWaitUs, rcv->fds, &rcv->nfds, &eof, &err);
        if (got == static_cast<ssize_t>(count)) a->place_waits.Got();
        else a->place_waits.Busy();
      } else {
        got = ReceiveWithFds(w->fd, to, count, rcv->fds, &rcv->nfds);
        if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      }
      if (got != static_cast<ssize_t>(count) || rcv->nfds > 0) {
        a->place_next = false;
        if (got <= 0 && err != 0) {
          rcv->n = -1;
          rcv->err = err;
          return Served::kRead;
        }
        size_t landed = got > 0 ? static_cast<size_t>(got) : 0;
        if (fits) {
          memcpy(bytes + kPlaceHead, to, landed);
          rcv->n = static_cast<ssize_t>(kPlaceHead + landed);
        } else {
          NoteLanded(*a, bytes, landed);
          rcv->n = static_cast<ssize_t>(kPlaceHead);
        }
        return Served::kRead;
      }
      n = kPlaceHead + count;
      if (!AnswerPlaced(w->fd, *a, bytes, &send_err)) {
        rcv->n = -1;
        rcv->err = send_err;
        return Served::kRead;
      }
    } else {
      size_t done = AnswerFront(w->fd, *a, bytes, n, &send_err);
      if (send_err != 0) {
        rcv->n = -1;  // the peer is gone or broken: the owner closes with this error
        rcv->err = send_err;
        return Served::kRead;
      }
      if (done < n) {
        if (done > 0) memmove(bytes, bytes + done, n - done);
        rcv->n = static_cast<ssize_t>(n - done);
        return Served::kRead;
      }
    }
    a->stats[kReadsAnswered] += 1;
    answered_bytes += n;
    if (--answer_reads == 0 || !a->unsent.empty() || answered_bytes >= kAnswerBytesPerLinger) return Served::kAnswered;
    // Waits only after replies, as the owner lingers only after answers: a
    // peer streaming posted writes fills larger reads through the loop.
    bool waits = wait_more && a->stats[kRepliesOut] > replies;
    if (!waits && n < len) return Served::kAnswered;  // a short read: the socket is empty for now
    wait = waits;
  }
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  napi_env env = w->env;
  // An error status carries no events: report what is watched, so the
  // owner tries its I/O and meets the real error there.
  if (status < 0) events = w->events;
  events &= UV_READABLE | UV_WRITABLE;
  Received rcv;
  bool read = false;
  if ((events & UV_READABLE) != 0 && w->read_ahead > 0 && read_ahead_buffer.data != nullptr) {
    read = true;
    Answers* a = w->answers;
    if (a != nullptr && (events & UV_WRITABLE) == 0 && MayAnswerAtEvent(*a)) {
      // Answered here, with a linger of its own, unless the loop has been
      // busy: then the next requests come with the loop's next turns.
      bool linger = event_backoff.TryNow();
      Served served = Serve(w, false, static_cast<int32_t>(a->event_reads), linger, &rcv, linger ? &event_backoff : nullptr);
      // Nothing for JavaScript to do, unless a reply left a rest to queue
      // (it hears "nothing read" and takes it).
      if (served != Served::kRead && a->unsent.empty()) return;
      if (served != Served::kRead) rcv = Received();
    } else {
      rcv.n = ReceiveWithFds(w->fd, read_ahead_buffer.data, std::min(w->read_ahead, read_ahead_buffer.len), rcv.fds, &rcv.nfds);
      rcv.err = errno;
    }
  }
  napi_handle_scope scope;
  napi_value self = nullptr, cb = nullptr, argv[3], result, error;
  size_t argc = 1;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, w->self, &self);
  napi_get_reference_value(env, w->callback, &cb);
  if (self != nullptr && cb != nullptr) {
    napi_create_int32(env, events, &argv[0]);
    if (read) {
      ReadAheadResult(env, rcv.n, rcv.err, rcv.fds, rcv.nfds, argv + 1);
      argc = 3;
    }
    // napi_call_function, not napi_make_callback: the callback scope the
    // latter opens and closes around every call (async context, tick and
    // microtask checkpoint) was ~5% of a vfio-user round trip. The
    // nextTicks and microtasks the callback leaves run in this very turn
    // of the loop anyway, before it waits again: Node's check phase runs
    // right after the poll phase and always opens and closes a callback
    // scope (RunAndClearNativeImmediates), ahead of any setImmediate. A
    // throw becomes an uncaught exception, as Node's own callbacks do.
    if (napi_call_function(env, self, cb, argc, argv, &result) == napi_pending_exception) {
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  } else if (read && rcv.nfds > 0) {
    for (size_t i = 0; i < rcv.nfds; i++) close(rcv.fds[i]);  // nobody to give them to
  }
  napi_close_handle_scope(env, scope);
}

// The Watcher behind `this`, reading `n` arguments into argv.
Watcher* Unwrap(napi_env env, napi_callback_info info, size_t n = 0, napi_value* argv = nullptr) {
  napi_value self;
  void* w = nullptr;
  napi_get_cb_info(env, info, &n, argv, &self, nullptr);
  if (napi_unwrap(env, self, &w) != napi_ok) ThrowInvalid(env, "not an FdWatcher");
  return static_cast<Watcher*>(w);
}

void Finalize(napi_env env, void* data, void*) {
  Watcher* w = static_cast<Watcher*>(data);
  w->js_gone = true;
  napi_delete_reference(env, w->callback);
  napi_delete_reference(env, w->self);
  BeginClose(w);  // collected while stopped but never closed
  MaybeFree(w);
}

void FinalizeLinger(napi_env, void* data, void*) {
  Watcher* w = static_cast<Watcher*>(data);
  w->linger_gone = true;
  MaybeFree(w);
}

napi_value Linger(napi_env env, napi_callback_info info);

// new FdWatcher(fd, callback(events))
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  napi_valuetype t;
  int32_t fd;
  uv_loop_t* loop;
  napi_get_cb_info(env, info, &argc, argv, &self, nullptr);
  if (!GetInt32(env, argv[0], "fd", &fd)) return nullptr;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    return ThrowInvalid(env, "callback must be a function");
  }
  if (watched_fds.count(fd) != 0) return ThrowErrno(env, EEXIST, "FdWatcher (fd already watched)");
  napi_get_uv_event_loop(env, &loop);
  Watcher* w = new Watcher();
  w->env = env;
  w->fd = fd;
  // uv_poll_init also makes the fd nonblocking (for every process sharing
  // the open file) and refuses fds epoll cannot watch.
  if (int err = uv_poll_init(loop, &w->poll, fd)) {
    delete w;
    return ThrowErrno(env, -err, "uv_poll_init");
  }
  w->poll.data = w;
  watched_fds.insert(fd);
  // linger() is the instance's own function, its Watcher its data: it is
  // called per message, and finding the Watcher of `this` (napi_unwrap, a
  // private-symbol lookup in V8's runtime) cost ~740 instructions a call,
  // a tenth of a request's. The Watcher lives until that function is
  // collected too, so a copy of it kept anywhere stays safe to call.
  napi_value linger;
  napi_create_function(env, "linger", NAPI_AUTO_LENGTH, Linger, w, &linger);
  napi_add_finalizer(env, linger, w, FinalizeLinger, nullptr, nullptr);
  napi_property_descriptor props[] = {
      {"callback", nullptr, nullptr, nullptr, nullptr, argv[1], napi_default, nullptr},
      {"linger", nullptr, nullptr, nullptr, nullptr, linger, napi_default, nullptr},
  };
  napi_define_properties(env, self, 2, props);
  napi_create_reference(env, argv[1], 0, &w->callback);
  napi_wrap(env, self, w, Finalize, nullptr, &w->self);
  return nullptr;
}

// start(events): READABLE | WRITABLE (the libuv bits); 0 stops.
napi_value Start(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t events;
  Watcher* w = Unwrap(env, info, 1, argv);
  if (w == nullptr || !GetInt32(env, argv[0], "events", &events)) return nullptr;
  if (w->closing) return ThrowErrno(env, EBADF, "FdWatcher.start (watcher closed)");
  events &= UV_READABLE | UV_WRITABLE;
  if (events == 0) {
    uv_poll_stop(&w->poll);
  } else if (events != w->events) {
    if (int err = uv_poll_start(&w->poll, events, OnPoll)) return ThrowErrno(env, -err, "uv_poll_start");
  }
  SetEvents(w, events);
  return nullptr;
}

napi_value Stop(napi_env env, napi_callback_info info) {
  Watcher* w = Unwrap(env, info);
  if (w != nullptr && !w->closing) {
    uv_poll_stop(&w->poll);
    SetEvents(w, 0);
  }
  return nullptr;
}

// close(): idempotent; the fd stays open, it belongs to the caller.
napi_value Close(napi_env env, napi_callback_info info) {
  Watcher* w = Unwrap(env, info);
  if (w != nullptr && !w->closing) {
    SetEvents(w, 0);
    BeginClose(w);
  }
  return nullptr;
}

// readAhead(max): on each readable event, first read up to `max` bytes
// into the shared buffer for the callback (0: no read-ahead).
napi_value ReadAheadMethod(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t max;
  Watcher* w = Unwrap(env, info, 1, argv);
  if (w == nullptr || !GetInt32(env, argv[0], "max", &max)) return nullptr;
  if (max < 0) return ThrowInvalid(env, "read-ahead size must not be negative");
  w->read_ahead = static_cast<size_t>(max);
  return nullptr;
}

// setReadAheadBuffer(owner, view | null): where every watcher's read-ahead
// goes. The first owner keeps the right to set it for the thread's life;
// another is EBUSY. Never a buffer that can be detached or one somebody
// holds on to.
napi_value SetReadAheadBuffer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  ReadAheadBuffer next;
  napi_valuetype t;
  GetArgs(env, info, argv, 2);
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_object) {
    return ThrowInvalid(env, "the read-ahead owner must be an object");
  }
  napi_value owner = nullptr;
  bool same = false;
  if (read_ahead_owner != nullptr) napi_get_reference_value(env, read_ahead_owner, &owner);
  if (owner != nullptr && (napi_strict_equals(env, owner, argv[0], &same) != napi_ok || !same)) {
    return ThrowErrno(env, EBUSY, "setReadAheadBuffer", "(another user in this thread owns the read-ahead buffer)");
  }
  if (!IsNullish(env, argv[1])) {
    if (!GetBytes(env, argv[1], "read-ahead buffer", &next.data, &next.len)) return nullptr;
    // A read of 0 bytes returns 0, which the owner would take for EOF.
    if (next.len == 0) return ThrowInvalid(env, "the read-ahead buffer must not be empty (0 bytes read means EOF)");
    napi_create_reference(env, argv[1], 1, &next.ref);
  }
  if (owner == nullptr) napi_create_reference(env, argv[0], 1, &read_ahead_owner);
  ReadAheadBuffer& rx = read_ahead_buffer;
  if (rx.ref != nullptr) napi_delete_reference(env, rx.ref);
  rx = next;
  return nullptr;
}

// Runs the nextTicks and microtasks JavaScript left, as Node does when a
// callback returns: by opening and closing a callback scope. A throw there
// is an uncaught exception, as it would have been from the loop.
void RunPending(napi_env env) {
  napi_value resource;
  if (linger_resource == nullptr) {
    napi_value name;
    napi_create_object(env, &resource);
    napi_create_reference(env, resource, 1, &linger_resource);
    napi_create_string_utf8(env, "uvfio.linger", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, resource, name, &linger_context);
  }
  napi_get_reference_value(env, linger_resource, &resource);
  napi_callback_scope scope;
  if (napi_open_callback_scope(env, resource, linger_context, &scope) != napi_ok) return;
  napi_close_callback_scope(env, scope);
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
}

// Sleeps until the loop has work: one of its fds ready (the watcher's own
// among them: it is in the loop's epoll set while watched), a timer due, a
// signal. Polling the epoll fd alone, not the watcher's fd beside it,
// spares a wait queue per wait; the caller then tries its fd. False at
// once when the loop has work already.
bool WaitForLoop(uv_loop_t* loop) {
  // 0 also while watchers started or changed in this turn wait for the
  // loop's next poll to enter its epoll set (their fds could not end the wait).
  int timeout = uv_backend_timeout(loop);
  if (timeout == 0) return false;
  // With no timer pending the wait has no end but the fds: no clock to
  // read, no timerfd to poll.
  bool timed = timeout > 0;
  if (timed) {
    uv_update_time(loop);  // the timeout counts from the loop's clock, stale since the event
    timeout = uv_backend_timeout(loop);
    if (timeout == 0) return false;
  }
  if (timed && linger_timer >= 0) {
    // libuv's clock is CLOCK_MONOTONIC (or its coarse twin) in ms: the timer is due at loop time + timeout.
    uint64_t due = uv_now(loop) + static_cast<uint64_t>(timeout);
    if (due != linger_armed_at) {
      struct itimerspec at = {};
      at.it_value.tv_sec = static_cast<time_t>(due / 1000);
      at.it_value.tv_nsec = static_cast<long>(due % 1000) * 1000000;
      linger_armed_at = timerfd_settime(linger_timer, TFD_TIMER_ABSTIME, &at, nullptr) == 0 ? due : UINT64_MAX;
    }
    if (linger_armed_at == due) timeout = -1;  // the timerfd wakes the wait
  }
  struct pollfd fds[2] = {{uv_backend_fd(loop), POLLIN, 0}, {linger_timer, POLLIN, 0}};
  int r = poll(fds, timed && linger_timer >= 0 ? 2 : 1, timeout);
  if (r > 0 && (fds[1].revents & POLLIN) != 0) {
    uint64_t expirations;
    (void)!read(linger_timer, &expirations, sizeof expirations);
    linger_armed_at = UINT64_MAX;
  }
  return r > 0;
}

// linger(ranPending?, answerReads?): runs the JavaScript work left pending
// (nextTicks, microtasks), unless the caller says it just did (ranPending
// true), then waits until the loop has something to do, so that when that
// is this fd being readable its owner can take the next message without a
// turn of the loop (no epoll wake-up, no loop phases, no call into
// JavaScript). Returns false when the loop wants its turn for anything
// else (or the watcher is not watching for READABLE); true when the fd is
// readable and there is no read-ahead to make; otherwise the read-ahead's
// result as the callback would get it: the byte count, or [count, fds or
// error] when fds or an error came with it. Only from the watcher's own
// callback: inside a callback scope the pending work would not run, and
// the wait could be for it.
//
// With answerReads > 0, answers set (answer()) and ranPending true (work
// run here could change what the caller checked), up to that many reads
// whose messages are all answerable region accesses are answered here
// (answer.h) and the wait begins again; a read that ends in another
// message hands that one and the rest to the owner at the buffer's start.
// null: that many reads were answered whole, or 256 KiB of requests
// (kAnswerBytesPerLinger: a flood gets no more than the JavaScript path
// gives one event). The owner must check the stats for unsent bytes
// before it sends anything (takeUnsent).
napi_value Linger(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, nullptr, &data);
  Watcher* w = static_cast<Watcher*>(data);
  bool ran_pending = false;
  int32_t answer_reads = 0;
  if (argc > 0) napi_get_value_bool(env, args[0], &ran_pending);  // anything but true: false
  if (argc > 1 && napi_get_value_int32(env, args[1], &answer_reads) != napi_ok) answer_reads = 0;
  if (!ran_pending && !w->closing && (w->events & UV_READABLE) != 0) {
    RunPending(env);  // may stop or close the watcher
    answer_reads = 0;  // and change what the caller checked before it allowed answers
  }
  Received rcv;
  napi_value result;
  switch (Serve(w, true, answer_reads, true, &rcv, nullptr)) {
    case Served::kBusy:
      napi_get_boolean(env, false, &result);
      return result;
    case Served::kReadable:
      napi_get_boolean(env, true, &result);
      return result;
    case Served::kAnswered:
      napi_get_null(env, &result);
      return result;
    case Served::kRead:
      break;
  }
  napi_value read[2];
  ReadAheadResult(env, rcv.n, rcv.err, rcv.fds, rcv.nfds, read);
  napi_valuetype extra;
  napi_typeof(env, read[1], &extra);
  if (extra == napi_undefined) return read[0];
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, read[0]);
  napi_set_element(env, result, 1, read[1]);
  return result;
}

// answer(stats, maxCount, regions, blockers?, eventReads?) | answer(null):
// what the watcher may answer itself (answer.h): stats a Float64Array of
// AnswerStat counts, maxCount the largest access the session accepts (a
// write in the read it came with: 64 KiB at most),
// regions by index {read, write: Uint8Array | null} of plain memory, kept
// alive until replaced, answer(null) or close. In lingers (answerReads);
// with eventReads > 0 also at readable events (up to that many reads, its
// own linger included) while every blocker cell (Int32Array) is 0; the
// callback then runs only for what is left. Unsent bytes of the answers
// replaced are dropped: take them first.
napi_value AnswerMethod(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  Watcher* w = Unwrap(env, info, 5, argv);
  if (w == nullptr) return nullptr;
  if (w->closing) return ThrowErrno(env, EBADF, "FdWatcher.answer (watcher closed)");
  Answers* next = nullptr;
  if (!IsNullish(env, argv[0])) {
    next = NewAnswers(env, argv);
    if (next == nullptr) return nullptr;
  }
  DeleteAnswers(env, w->answers);
  w->answers = next;
  return nullptr;
}

// takeUnsent(): the rest of a reply linger answered that the kernel did
// not take, to be sent before anything else (empty when none).
napi_value TakeUnsentMethod(napi_env env, napi_callback_info info) {
  Watcher* w = Unwrap(env, info);
  return w == nullptr ? nullptr : TakeUnsent(env, w->answers);
}

// ref()/unref(): whether an active watcher keeps the process alive.
template <void (*Op)(uv_handle_t*)>
napi_value SetRef(napi_env env, napi_callback_info info) {
  Watcher* w = Unwrap(env, info);
  if (w != nullptr && !w->closing) Op(reinterpret_cast<uv_handle_t*>(&w->poll));
  return nullptr;
}

}  // namespace

void InitWatcher(napi_env env, napi_value exports) {
#define METHOD(name, cb) {name, nullptr, cb, nullptr, nullptr, nullptr, napi_default, nullptr}
  napi_property_descriptor methods[] = {
      METHOD("start", Start),        METHOD("stop", Stop), METHOD("close", Close),
      METHOD("ref", SetRef<uv_ref>), METHOD("unref", SetRef<uv_unref>), METHOD("readAhead", ReadAheadMethod),
      METHOD("answer", AnswerMethod), METHOD("takeUnsent", TakeUnsentMethod),
  };
#undef METHOD
  napi_value cls;
  size_t n = sizeof methods / sizeof methods[0];
  napi_define_class(env, "FdWatcher", NAPI_AUTO_LENGTH, New, nullptr, n, methods, &cls);
  napi_set_named_property(env, exports, "FdWatcher", cls);
  static const Fn fns[] = {{"setReadAheadBuffer", SetReadAheadBuffer}};
  DefineFunctions(env, exports, fns, 1);
  if (linger_timer < 0) linger_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  // The buffer's reference dies with the environment: forget its memory too.
  napi_add_env_cleanup_hook(
      env,
      [](void*) {
        read_ahead_buffer = ReadAheadBuffer();
        read_ahead_owner = nullptr;
        linger_resource = nullptr;
        linger_context = nullptr;
        if (linger_timer >= 0) close(linger_timer);
        linger_timer = -1;
        linger_armed_at = UINT64_MAX;
      },
      nullptr);
}

}  // namespace uvfio
