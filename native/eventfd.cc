// eventfd: the doorbell of vfio-user interrupts. The client hands the
// server one per vector (SET_IRQS) and the server writes to it.
//
// A client shares the file description of the eventfds it hands over, so
// it can clear O_NONBLOCK at any moment and fill the counter to 2^64 - 2:
// a plain write of 1 would then block until the client reads. Nothing on
// Linux writes to an eventfd "without blocking" whatever its flags
// (pwritev2's RWF_NOWAIT is EOPNOTSUPP there, and /proc/self/fd/N of an
// eventfd cannot be opened again with flags of our own), setting
// O_NONBLOCK first races with the client clearing it, and arming a timer
// around every write costs far more than the write (reprogramming the
// timer hardware). So eventfdSignal marks each write as in progress (a
// per-thread sequence number, odd while writing: two plain stores), and a
// watchdog thread that looks every kWatchNs interrupts a write it finds
// still in progress one look later: it sends the writing thread a signal
// whose handler jumps out of the write. A write blocks only while the
// counter is full, so a write cut short (like EAGAIN) means the reader
// already has a wakeup pending. So a write is cut only while its thread
// sleeps in that wait: /proc says it is asleep interruptibly (S) inside
// this very write(fd, &kOne, 8). Any other write in progress ends by
// itself: a thread only preempted (R; a busy host can keep it off the CPU
// for many looks), or one waiting for memory (D: a page fault queued
// behind a change of the address space, such as a fork copying it).
// Cutting it short would call a counter full that is not, and could lose
// the interrupt. The watchdog sleeps while no write has happened for
// kIdleLooks looks.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "common.h"

namespace uvfio {

namespace {

// How often the watchdog looks: a blocked write is cut short after one to
// two of these.
constexpr long kWatchNs = 2 * 1000 * 1000;
// Looks without any write before the watchdog sleeps until the next one.
constexpr int kIdleLooks = 500;

// What GuardedWrite adds; the watchdog knows its write by this address.
const uint64_t kOne = 1;

// The real-time signal the watchdog sends; see OnGuard.
int GuardSignal() { return SIGRTMIN + 7; }

// One thread that signals eventfds (the main thread, a worker).
struct Writer {
  pthread_t thread;
  // Its kernel thread id, for /proc/self/task/TID/stat.
  pid_t tid;
  // Odd while a write is in progress; only this thread changes it.
  std::atomic<uint64_t> seq{0};
  // The eventfd of the write in progress (set before seq turns odd).
  std::atomic<int> fd{-1};
  // The write the watchdog wants cut short (a value of seq).
  std::atomic<uint64_t> cut{0};
  // Where the handler jumps; valid while `armed`.
  sigjmp_buf jump;
  volatile sig_atomic_t armed = 0;
  // seq at the watchdog's last look (the watchdog's own).
  uint64_t seen = 0;
};

// Never destroyed: the watchdog runs until the process exits, and a
// condition variable destroyed at exit while it waits on it would hang
// the exit for good.
std::mutex& registry_lock = *new std::mutex();
std::condition_variable& wake_watchdog = *new std::condition_variable();
std::vector<Writer*>& Writers() {
  static auto* writers = new std::vector<Writer*>();
  return *writers;
}
std::atomic<bool> watchdog_asleep{false};
bool watchdog_started = false;
int guard_error = 0;

// Runs on the writing thread. Jumps out only of the write the watchdog
// meant (the thread may have finished it and begun another meanwhile);
// otherwise it returns, and SA_RESTART restarts whatever it interrupted.
void OnGuard(int, siginfo_t* info, void*) {
  Writer* w = static_cast<Writer*>(info->si_value.sival_ptr);
  if (w == nullptr || !w->armed || w->seq.load(std::memory_order_relaxed) != w->cut.load(std::memory_order_relaxed)) return;
  w->armed = 0;
  siglongjmp(w->jump, 1);
}

// Reads /proc/self/task/TID/NAME into buf (NUL-terminated); false if it
// cannot be read.
bool ReadTaskFile(pid_t tid, const char* name, char* buf, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/%s", static_cast<int>(tid), name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  return true;
}

// True when thread `tid` of this process sleeps in the wait of a write of
// kOne to the full eventfd `fd`: state S (that wait is interruptible; D
// is a fault or a lock, R a preemption), and /proc's syscall file names
// write(fd, &kOne, 8) (it says "running" for a thread on a CPU or waiting
// for one, and -1 for a fault outside a system call). A kernel without
// that file leaves the state alone to decide. Read only for a write seen
// in progress at two looks, so never on the fast path.
bool BlockedInWrite(pid_t tid, int fd) {
  char buf[256];
  if (!ReadTaskFile(tid, "stat", buf, sizeof buf)) return false;
  // "TID (comm) STATE ...": comm may hold spaces and parentheses, so the
  // state follows the last ')'.
  const char* paren = strrchr(buf, ')');
  if (paren == nullptr || paren[1] != ' ' || paren[2] != 'S') return false;
  if (!ReadTaskFile(tid, "syscall", buf, sizeof buf)) return true;
  long nr;
  unsigned long long arg0, arg1, arg2;
  if (sscanf(buf, "%ld 0x%llx 0x%llx 0x%llx", &nr, &arg0, &arg1, &arg2) != 4) return false;
  return nr == SYS_write && arg0 == static_cast<unsigned>(fd) && arg1 == reinterpret_cast<uintptr_t>(&kOne) &&
         arg2 == sizeof kOne;
}

void Watchdog() {
  int idle = 0;
  std::unique_lock<std::mutex> lock(registry_lock);
  for (;;) {
    bool moved = false;
    for (Writer* w : Writers()) {
      uint64_t s = w->seq.load(std::memory_order_acquire);
      if (s != w->seen) moved = true;
      // In progress, the same write as one look ago, blocked in the
      // eventfd's wait, and still the same write after /proc said so: cut
      // it short.
      if ((s & 1) != 0 && s == w->seen && BlockedInWrite(w->tid, w->fd.load(std::memory_order_relaxed)) &&
          w->seq.load(std::memory_order_acquire) == s) {
        w->cut.store(s, std::memory_order_relaxed);
        union sigval v;
        v.sival_ptr = w;
        pthread_sigqueue(w->thread, GuardSignal(), v);
      }
      w->seen = s;
    }
    idle = moved ? 0 : idle + 1;
    if (idle >= kIdleLooks) {
      watchdog_asleep.store(true);
      wake_watchdog.wait(lock, [] { return !watchdog_asleep.load(); });
      idle = 0;
      continue;
    }
    lock.unlock();
    struct timespec ts = {0, kWatchNs};
    nanosleep(&ts, nullptr);
    lock.lock();
  }
}

// Sets up, once per process, the handler (SA_SIGINFO for the Writer,
// SA_NODEFER so a jump out leaves the mask as it was, SA_RESTART so a
// late signal interrupts nothing) and the watchdog thread. EBUSY if
// someone else handles that signal already.
int StartGuard() {
  // Called with registry_lock held.
  if (watchdog_started) return guard_error;
  watchdog_started = true;
  struct sigaction old {};
  if (sigaction(GuardSignal(), nullptr, &old) != 0) return guard_error = errno;
  if ((old.sa_flags & SA_SIGINFO) != 0 || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) {
    return guard_error = EBUSY;
  }
  struct sigaction sa {};
  sa.sa_sigaction = OnGuard;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
  if (sigaction(GuardSignal(), &sa, nullptr) != 0) return guard_error = errno;
  // It blocks every signal (it inherits this mask) and runs until the
  // process exits; detached, nobody joins it.
  sigset_t all, prev;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &prev);
  pthread_t t;
  int err = pthread_create(&t, nullptr, [](void*) -> void* { Watchdog(); return nullptr; }, nullptr);
  pthread_sigmask(SIG_SETMASK, &prev, nullptr);
  if (err != 0) return guard_error = err;
  pthread_detach(t);
  return 0;
}

// This thread's Writer, registered on first use and removed when the
// thread ends.
struct ThreadWriter {
  Writer* writer = nullptr;
  int error = -1;

  ~ThreadWriter() {
    if (writer == nullptr) return;
    std::lock_guard<std::mutex> guard(registry_lock);
    auto& writers = Writers();
    for (size_t i = 0; i < writers.size(); i++) {
      if (writers[i] == writer) {
        writers.erase(writers.begin() + static_cast<long>(i));
        break;
      }
    }
    delete writer;
  }

  int Ready() {
    if (error >= 0) return error;
    std::lock_guard<std::mutex> guard(registry_lock);
    if (int err = StartGuard()) return error = err;
    // A thread may start with every signal blocked: this one must take it.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, GuardSignal());
    if (int err = pthread_sigmask(SIG_UNBLOCK, &set, nullptr)) return error = err;
    writer = new Writer();
    writer->thread = pthread_self();
    writer->tid = static_cast<pid_t>(syscall(SYS_gettid));
    Writers().push_back(writer);
    return error = 0;
  }
};

thread_local ThreadWriter this_thread_writer;

// What eventfdSignal returns.
enum SignalResult { kDelivered = 0, kFull = 1, kBlocked = 2 };

// One write of 1 that the watchdog may cut short. Kept to plain stores
// and a raw system call: the jump may land here from inside the call.
SignalResult GuardedWrite(Writer* w, int fd, int* err) {
  long n = -1;
  w->fd.store(fd, std::memory_order_relaxed);
  w->seq.store(w->seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (sigsetjmp(w->jump, 0) == 0) {
    w->armed = 1;
    n = syscall(SYS_write, fd, &kOne, sizeof kOne);
    *err = errno;
    w->armed = 0;
  } else {
    n = -1;
    *err = EINTR;
  }
  w->seq.store(w->seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (n == sizeof kOne) return kDelivered;
  if (*err == EAGAIN) return kFull;
  if (*err == EINTR) return kBlocked;
  return static_cast<SignalResult>(-1);
}

// eventfd(initval = 0, { nonblock, semaphore }) -> fd, always CLOEXEC.
napi_value EventFd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint64_t initval = 0;
  bool has_initval, nonblock, semaphore;
  GetArgs(env, info, argv, 2);
  if (!GetSize(env, argv[0], "initval", &initval, &has_initval) ||
      !GetFlag(env, argv[1], "nonblock", &nonblock) || !GetFlag(env, argv[1], "semaphore", &semaphore)) {
    return nullptr;
  }
  if (initval > UINT32_MAX) return ThrowInvalid(env, "initval must fit 32 bits");
  int fd = eventfd(static_cast<unsigned>(initval),
                   EFD_CLOEXEC | (nonblock ? EFD_NONBLOCK : 0) | (semaphore ? EFD_SEMAPHORE : 0));
  return fd >= 0 ? Number(env, fd) : ThrowErrno(env, errno, "eventfd");
}

// eventfdWrite(fd, value = 1): adds value (number or bigint) to the counter.
napi_value EventFdWrite(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  uint64_t value = 1;
  napi_valuetype t;
  bool lossless;
  if (!GetFdArgs(env, info, argv, 2, &fd)) return nullptr;
  if (napi_typeof(env, argv[1], &t) == napi_ok && t == napi_bigint) {
    napi_get_value_bigint_uint64(env, argv[1], &value, &lossless);
    if (!lossless) return ThrowInvalid(env, "value must fit 64 bits unsigned");
  } else if (!IsNullish(env, argv[1]) && !GetSize(env, argv[1], "value", &value)) {
    return nullptr;
  }
  ssize_t n;
  do n = write(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  // EAGAIN (nonblocking) comes only when the counter would pass 2^64 - 2;
  // blocking there would hang the loop, so it is an error either way.
  return n < 0 ? ThrowErrno(env, errno, "eventfd write") : nullptr;
}

// eventfdSignal(fd) -> 0 when 1 was added to the counter; 1 when the
// counter was full and the fd nonblocking (EAGAIN); 2 when it was full and
// the write blocked until the watchdog cut it short (O_NONBLOCK is then
// set again). Never blocks for longer than two kWatchNs. Other failures
// (EBADF, EINVAL for a fd that is not an eventfd) throw.
napi_value EventFdSignal(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!GetFdArgs(env, info, argv, 1, &fd)) return nullptr;
  ThreadWriter& tw = this_thread_writer;
  if (int err = tw.Ready()) return ThrowErrno(env, err, "eventfd watchdog");
  if (watchdog_asleep.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> guard(registry_lock);
    watchdog_asleep.store(false);
    wake_watchdog.notify_one();
  }
  int err = 0;
  SignalResult r = GuardedWrite(tw.writer, fd, &err);
  if (r == kBlocked) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  }
  if (r < 0) return ThrowErrno(env, err, "eventfd signal");
  return Number(env, r);
}

// setNonblocking(fd, on): sets or clears O_NONBLOCK on the file description.
napi_value SetNonblocking(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool on;
  if (!GetFdArgs(env, info, argv, 2, &fd)) return nullptr;
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) return ThrowInvalid(env, "on must be a boolean");
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return ThrowErrno(env, errno, "fcntl(F_GETFL)");
  int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (want != fl && fcntl(fd, F_SETFL, want) != 0) return ThrowErrno(env, errno, "fcntl(F_SETFL)");
  return nullptr;
}

// eventfdRead(fd) -> the counter as a bigint (which resets it, or takes 1
// in semaphore mode), or null when it is 0 on a nonblocking fd.
napi_value EventFdRead(napi_env env, napi_callback_info info) {
  napi_value argv[1], r;
  int32_t fd;
  uint64_t value;
  if (!GetFdArgs(env, info, argv, 1, &fd)) return nullptr;
  ssize_t n;
  do n = read(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) {
    napi_get_null(env, &r);
  } else if (n != sizeof value) {
    return ThrowErrno(env, n < 0 ? errno : EINVAL, "eventfd read");
  } else {
    napi_create_bigint_uint64(env, value, &r);
  }
  return r;
}

}  // namespace

void InitEventfd(napi_env env, napi_value exports) {
  static const Fn fns[] = {{"eventfd", EventFd},
                           {"eventfdWrite", EventFdWrite},
                           {"eventfdSignal", EventFdSignal},
                           {"eventfdRead", EventFdRead},
                           {"setNonblocking", SetNonblocking}};
  DefineFunctions(env, exports, fns, sizeof fns / sizeof fns[0]);
}

}  // namespace uvfio
