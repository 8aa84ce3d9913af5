// UNIX stream sockets with fd passing: the part of the socket API Node
// lacks (SCM_RIGHTS), plus the plumbing around it. Every call is
// synchronous and nonblocking (but sendmsgWait, which waits a bounded
// time); readiness comes from FdWatcher.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "common.h"
#include "receive.h"

namespace uvfio {

namespace {

constexpr size_t kControlSize = CMSG_SPACE(sizeof(int) * kMaxFds);

// Control buffer for recvmsg/sendmsg: one per thread, so workers may use
// the addon at once, and not a 1 KiB stack frame on every call.
alignas(struct cmsghdr) thread_local char control_buf[kControlSize];

bool GetSocketPath(napi_env env, napi_value v, sockaddr_un* addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (!GetString(env, v, "socket path", addr->sun_path, sizeof addr->sun_path)) return false;
  // Empty would mean the abstract namespace or autobind; uvfio serves only
  // filesystem sockets, which an operator can see and chmod.
  if (addr->sun_path[0] == '\0') return ThrowInvalid(env, "socket path must not be empty"), false;
  return true;
}

bool Retry(ssize_t r) { return r < 0 && errno == EINTR; }
bool WouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK; }

// listenUnix(path, backlog = 128) -> listening fd, socket file mode 0600.
napi_value ListenUnix(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  GetArgs(env, info, argv, 2);
  sockaddr_un addr;
  int32_t backlog = 128;
  if (!GetSocketPath(env, argv[0], &addr)) return nullptr;
  if (!IsNullish(env, argv[1]) && !GetInt32(env, argv[1], "backlog", &backlog)) return nullptr;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  const char* step = "bind";
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    // Linux ignores fchmod on sockets. Restricting the file between bind
    // and listen is race-free: nobody can connect before listen().
    step = "chmod";
    if (chmod(addr.sun_path, 0600) == 0) {
      step = "listen";
      if (listen(fd, backlog) == 0) return Number(env, fd);
    }
    int err = errno;
    unlink(addr.sun_path);  // ours: bind just created it
    errno = err;
  }
  int err = errno;
  close(fd);
  return ThrowErrno(env, err, step, addr.sun_path);
}

// acceptUnix(listenFd) -> connected fd, or -1 when nobody is waiting.
napi_value AcceptUnix(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t lfd;
  if (!GetFdArgs(env, info, argv, 1, &lfd)) return nullptr;
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Number(env, fd);
    // A client that gave up while queued is no failure of the listener.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (WouldBlock()) return Number(env, -1);
    return ThrowErrno(env, errno, "accept4");
  }
}

// connectUnix(path) -> connected nonblocking fd.
napi_value ConnectUnix(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  sockaddr_un addr;
  GetArgs(env, info, argv, 1);
  if (!GetSocketPath(env, argv[0], &addr)) return nullptr;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  // A nonblocking AF_UNIX connect completes at once, or fails with EAGAIN
  // when the backlog is full. A blocking one could wait forever for a
  // server living in this very event loop.
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return Number(env, fd);
  int err = errno;
  close(fd);
  return ThrowErrno(env, err, "connect", addr.sun_path);
}

// socketPair() -> [fd, fd]: a connected pair of nonblocking CLOEXEC stream
// sockets (vfio-user's twin socket: one end stays, the other is sent).
napi_value SocketPair(napi_env env, napi_callback_info info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    return ThrowErrno(env, errno, "socketpair");
  }
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, Number(env, sv[0]));
  napi_set_element(env, arr, 1, Number(env, sv[1]));
  return arr;
}

// setSendBufferSize(fd, bytes) -> the size in effect (SO_SNDBUF; Linux
// doubles what it is asked and caps it at net.core.wmem_max * 2). A reply
// larger than the buffer is sent in pieces, each waiting for the peer.
napi_value SetSendBufferSize(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  int32_t size;
  if (!GetFdArgs(env, info, argv, 2, &fd)) return nullptr;
  if (!GetInt32(env, argv[1], "size", &size)) return nullptr;
  if (size <= 0) return ThrowInvalid(env, "the send buffer size must be positive");
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) < 0) return ThrowErrno(env, errno, "setsockopt SO_SNDBUF");
  int now = 0;
  socklen_t len = sizeof now;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &now, &len) < 0) return ThrowErrno(env, errno, "getsockopt SO_SNDBUF");
  return Number(env, now);
}

// peerCredentials(fd) -> [pid, uid, gid] of the process that connected
// (SO_PEERCRED: taken at connect time, translated into our namespaces; pid
// 0 when the peer's pid has no number in ours).
napi_value PeerCredentials(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!GetFdArgs(env, info, argv, 1, &fd)) return nullptr;
  ucred cred = {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return ThrowErrno(env, errno, "getsockopt SO_PEERCRED");
  napi_value arr;
  napi_create_array_with_length(env, 3, &arr);
  napi_set_element(env, arr, 0, Number(env, cred.pid));
  napi_set_element(env, arr, 1, Number(env, cred.uid));
  napi_set_element(env, arr, 2, Number(env, cred.gid));
  return arr;
}

// Shared tail of sendmsg and sendmsg2 (fds_value: nullptr or nullish when
// none). Without fds it allocates nothing.
napi_value SendIov(napi_env env, int fd, iovec* iov, int iovcnt, napi_value fds_value) {
  msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = iovcnt;
  if (fds_value != nullptr && !IsNullish(env, fds_value)) {
    int fds[kMaxFds];
    size_t nfds = 0;
    if (!GetFdArray(env, fds_value, fds, &nfds)) return nullptr;
    if (nfds > 0) {
      // On a stream socket the kernel silently drops the fds of a 0-byte send.
      if (iov[0].iov_len + (iovcnt > 1 ? iov[1].iov_len : 0) == 0) {
        return ThrowInvalid(env, "fds need at least one byte to travel with");
      }
      msg.msg_control = control_buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      cmsghdr* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
  }
  ssize_t n;
  // MSG_DONTWAIT: never block the loop, even on an adopted blocking fd.
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (Retry(n));
  if (n >= 0) return Number(env, static_cast<double>(n));
  return WouldBlock() ? Number(env, -1) : ThrowErrno(env, errno, "sendmsg");
}

// sendmsg(fd, data, fds?) -> bytes sent (maybe fewer), or -1 when full.
napi_value SendMsg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  int32_t fd;
  iovec iov;
  // Missing arguments read as undefined; a reply without fds passes two,
  // and is spared the check of the third (this is every reply's path).
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (!GetInt32(env, argv[0], "fd", &fd) || !GetBytes(env, argv[1], "data", &iov.iov_base, &iov.iov_len)) {
    return nullptr;
  }
  return SendIov(env, fd, &iov, 1, argc > 2 ? argv[2] : nullptr);
}

// sendmsg2(fd, head, body, fds?): both buffers in one sendmsg, so a reply
// header and its payload leave without being concatenated first.
napi_value SendMsg2(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  iovec iov[2];
  if (!GetFdArgs(env, info, argv, 4, &fd) ||
      !GetBytes(env, argv[1], "head", &iov[0].iov_base, &iov[0].iov_len) ||
      !GetBytes(env, argv[2], "body", &iov[1].iov_base, &iov[1].iov_len)) {
    return nullptr;
  }
  return SendIov(env, fd, iov, 2, argv[3]);
}

// sendmsgWait(fd, head, body, budgetUs): the rest of a large write sent
// the way a blocking sendmsg sends it, the kernel handing each piece over
// as the peer reads the last, for at most `budgetUs` of waiting. A blocking
// send keeps little in flight and hot in cache: a 1 MiB reply takes ~25%
// less time than with a send buffer big enough for it, or with
// nonblocking sends each after a poll (measured on a shared 2-vCPU VM).
// The fd is made blocking for the call and sends in pieces, each with
// SO_SNDTIMEO set to the budget left; no piece starts once the budget is
// spent. The kernel counts that timeout in scheduler ticks (4 ms at
// HZ=250) and restarts it for every buffer of the piece it waits for, so
// the thread is held for the budget, plus the time the peer takes to read
// the piece under way (while it keeps reading), plus a tick. Smaller pieces
// bound that better and cost more: 1 MiB in pieces of 64, 128 and 256 KiB
// took 122, 107 and 101 us against 98 in one sendmsg. Returns the bytes
// sent (fewer once the budget ran out), or -1 when none went.
constexpr size_t kWaitPiece = 256 * 1024;

uint64_t NowUs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000 + static_cast<uint64_t>(t.tv_nsec) / 1000;
}

// Sets the send or receive timeout (`opt`) of `fd` to what is left until
// `end` (NowUs); false when nothing is left, or setsockopt failed (*err).
bool ArmTimeout(int fd, int opt, uint64_t end, int* err) {
  uint64_t now = NowUs();
  if (now >= end) return false;
  timeval left = {static_cast<time_t>((end - now) / 1000000), static_cast<suseconds_t>((end - now) % 1000000)};
  if (setsockopt(fd, SOL_SOCKET, opt, &left, sizeof left) == 0) return true;
  *err = errno;
  return false;
}

// The fd made blocking for a wait bounded by its send or receive timeout
// (`opt`, armed with ArmTimeout), and put back as it was after: the flags
// restored, the timeout zeroed (nothing else here blocks on this fd, but a
// process it is handed to might). ok() false: fcntl failed (*err).
class BlockingWait {
 public:
  BlockingWait(int fd, int opt, int* err) : fd_(fd), opt_(opt), flags_(fcntl(fd, F_GETFL)) {
    if (flags_ >= 0 && fcntl(fd, F_SETFL, flags_ & ~O_NONBLOCK) == 0) return;
    *err = errno;
    flags_ = -1;
  }
  ~BlockingWait() {
    if (flags_ < 0) return;
    timeval none = {0, 0};
    setsockopt(fd_, SOL_SOCKET, opt_, &none, sizeof none);
    fcntl(fd_, F_SETFL, flags_);
  }
  bool ok() const { return flags_ >= 0; }

 private:
  int fd_;
  int opt_;
  int flags_;
};

napi_value SendMsgWait(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  int32_t budget;
  void* head;
  size_t head_len;
  void* body;
  size_t body_len;
  if (!GetFdArgs(env, info, argv, 4, &fd) || !GetBytes(env, argv[1], "head", &head, &head_len) ||
      !GetBytes(env, argv[2], "body", &body, &body_len) || !GetInt32(env, argv[3], "budgetUs", &budget)) {
    return nullptr;
  }
  if (budget <= 0) return ThrowInvalid(env, "the wait budget must be positive");
  int err = 0;
  ssize_t n = SendWait(fd, head, head_len, body, body_len, static_cast<uint32_t>(budget), &err);
  size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
  if (err != 0 && sent == 0) return ThrowErrno(env, err, "sendmsg");
  return Number(env, sent == 0 ? -1.0 : static_cast<double>(sent));
}

void CloseAll(const int* fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

// recvmsgWait(fd, into, budgetUs, fdsOut): fills `into` the way a blocking
// recvmsg with MSG_WAITALL does, the kernel handing over each piece as the
// peer writes it, for at most `budgetUs` of waiting (SO_RCVTIMEO, counted
// in ticks as sendmsgWait's is). Stops early at fds (they go to fdsOut)
// and at EOF. Returns the bytes read, 0 at EOF with none, -1 when none came.
napi_value RecvMsgWait(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  int32_t budget;
  void* data;
  size_t len;
  bool is_array = false;
  if (!GetFdArgs(env, info, argv, 4, &fd) || !GetBytes(env, argv[1], "into", &data, &len) ||
      !GetInt32(env, argv[2], "budgetUs", &budget)) {
    return nullptr;
  }
  if (len == 0) return ThrowInvalid(env, "into must not be empty (0 bytes read means EOF)");
  if (budget <= 0) return ThrowInvalid(env, "the wait budget must be positive");
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array) return ThrowInvalid(env, "fdsOut must be an array");
  int fds[kMaxFds];
  size_t nfds = 0;
  bool eof = false;
  int err = 0;
  ssize_t n = ReceiveWait(fd, data, len, static_cast<uint32_t>(budget), fds, &nfds, &eof, &err);
  size_t got = n > 0 ? static_cast<size_t>(n) : 0;
  uint32_t at = 0;
  napi_get_array_length(env, argv[3], &at);
  for (size_t i = 0; i < nfds; i++) {
    napi_value v;
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, argv[3], at + i, v);
  }
  if (got == 0 && err != 0) return ThrowErrno(env, err, "recvmsg", err == EMSGSIZE ? kLostFdsDetail : nullptr);
  if (got == 0) return Number(env, eof ? 0 : -1);
  return Number(env, static_cast<double>(got));
}

// recvmsg(fd, into, fdsOut?) -> bytes read, 0 at EOF, -1 when empty.
napi_value RecvMsg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  void* data;
  size_t len;
  bool is_array = false;
  if (!GetFdArgs(env, info, argv, 3, &fd) || !GetBytes(env, argv[1], "into", &data, &len)) return nullptr;
  if (len == 0) return ThrowInvalid(env, "into must not be empty (0 bytes read means EOF)");
  napi_value out = IsNullish(env, argv[2]) ? nullptr : argv[2];
  // Checked before reading: bytes once consumed cannot be put back.
  if (out != nullptr && (napi_is_array(env, out, &is_array) != napi_ok || !is_array)) {
    return ThrowInvalid(env, "fdsOut must be an array");
  }
  int fds[kMaxFds];
  size_t nfds = 0;
  ssize_t n = ReceiveWithFds(fd, data, len, fds, &nfds);
  if (n < 0) {
    if (WouldBlock()) return Number(env, -1);
    return ThrowErrno(env, errno, "recvmsg", errno == EMSGSIZE ? kLostFdsDetail : nullptr);
  }
  uint32_t at = 0;
  if (nfds > 0 && (out == nullptr || napi_get_array_length(env, out, &at) != napi_ok)) {
    CloseAll(fds, nfds);  // nobody asked for them: do not leak them
    nfds = 0;
  }
  for (size_t i = 0; i < nfds; i++) {
    napi_value v;
    napi_create_int32(env, fds[i], &v);
    if (napi_set_element(env, out, at + i, v) != napi_ok) return CloseAll(fds + i, nfds - i), nullptr;
  }
  return Number(env, static_cast<double>(n));
}

// close(fd). On Linux the fd is gone even when close() says EINTR or EIO,
// so only EBADF (it never was open: a double close) is worth a throw.
napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!GetFdArgs(env, info, argv, 1, &fd)) return nullptr;
  if (close(fd) != 0 && errno == EBADF) return ThrowErrno(env, EBADF, "close");
  return nullptr;
}

// dup(fd) -> a CLOEXEC duplicate.
napi_value Dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!GetFdArgs(env, info, argv, 1, &fd)) return nullptr;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return r >= 0 ? Number(env, r) : ThrowErrno(env, errno, "dup");
}

}  // namespace

const char kLostFdsDetail[] =
    "lost file descriptors (control data truncated, likely out of fds); the connection must be closed";

ssize_t ReceiveWithFds(int fd, void* buf, size_t len, int* fds, size_t* nfds, int flags) {
  iovec iov = {buf, len};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control_buf;
  msg.msg_controllen = kControlSize;
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | flags);
  while (Retry(n));
  *nfds = 0;
  if (n < 0) return -1;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (k > kMaxFds - *nfds) k = kMaxFds - *nfds;  // the kernel cannot send more; be safe
    memcpy(fds + *nfds, CMSG_DATA(cm), k * sizeof(int));
    *nfds += k;
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    // Usually: this process is out of fds.
    CloseAll(fds, *nfds);
    *nfds = 0;
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

ssize_t SendWait(int fd, const void* head, size_t head_len, const void* body, size_t body_len, uint32_t budget_us, int* err) {
  *err = 0;
  BlockingWait blocking(fd, SO_SNDTIMEO, err);
  if (!blocking.ok()) return -1;
  const uint64_t end = NowUs() + budget_us;
  size_t total = head_len + body_len, sent = 0;
  while (sent < total && ArmTimeout(fd, SO_SNDTIMEO, end, err)) {
    iovec iov[2];
    int iovcnt = 0;
    size_t room = kWaitPiece;
    if (sent < head_len) {
      size_t n = std::min(head_len - sent, room);
      iov[iovcnt++] = {const_cast<char*>(static_cast<const char*>(head)) + sent, n};
      room -= n;
    }
    size_t body_at = sent > head_len ? sent - head_len : 0;
    if (room > 0 && body_at < body_len) {
      iov[iovcnt++] = {const_cast<char*>(static_cast<const char*>(body)) + body_at, std::min(body_len - body_at, room)};
    }
    msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = iovcnt;
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno;
      break;
    }
    // EAGAIN: the timeout, counted in scheduler ticks, may end well before
    // the budget does; the clock says when it really has.
  }
  return sent > 0 ? static_cast<ssize_t>(sent) : -1;
}

ssize_t ReceiveWait(int fd, void* buf, size_t len, uint32_t budget_us, int* fds, size_t* nfds, bool* eof, int* err) {
  *nfds = 0;
  *eof = false;
  *err = 0;
  BlockingWait blocking(fd, SO_RCVTIMEO, err);
  if (!blocking.ok()) return -1;
  const uint64_t end = NowUs() + budget_us;
  size_t got = 0;
  while (got < len && *nfds == 0 && ArmTimeout(fd, SO_RCVTIMEO, end, err)) {
    ssize_t n = ReceiveWithFds(fd, static_cast<char*>(buf) + got, len - got, fds, nfds, MSG_WAITALL);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n == 0) {
      *eof = true;
      break;
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno;
      break;
    }
  }
  return got > 0 ? static_cast<ssize_t>(got) : -1;
}

void InitSocket(napi_env env, napi_value exports) {
  static const Fn fns[] = {
      {"listenUnix", ListenUnix}, {"acceptUnix", AcceptUnix}, {"connectUnix", ConnectUnix},
      {"socketPair", SocketPair},       {"setSendBufferSize", SetSendBufferSize},
      {"peerCredentials", PeerCredentials},
      {"sendmsg", SendMsg},       {"sendmsg2", SendMsg2},     {"recvmsg", RecvMsg},
      {"sendmsgWait", SendMsgWait}, {"recvmsgWait", RecvMsgWait},
      {"close", Close},           {"dup", Dup},
  };
  DefineFunctions(env, exports, fns, sizeof fns / sizeof fns[0]);
}

}  // namespace uvfio
