// sd_notify(3) without libsystemd: one datagram to the service manager's
// notification socket ($NOTIFY_SOCKET), e.g. "READY=1". Node has no
// AF_UNIX datagram sockets, so this is the one call it needs.
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

namespace uvfio {

namespace {

// notifyDatagram(path, message): sends `message` (bytes) as one datagram
// to the AF_UNIX socket at `path`; a leading '@' names an abstract socket,
// as systemd writes NOTIFY_SOCKET. Blocking is not a concern: the kernel
// queues a datagram or refuses it (EAGAIN on a full queue) at once.
napi_value NotifyDatagram(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  GetArgs(env, info, argv, 2);
  sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (!GetString(env, argv[0], "notify socket path", addr.sun_path, sizeof addr.sun_path)) return nullptr;
  size_t len = strlen(addr.sun_path);
  if (len == 0) return ThrowInvalid(env, "notify socket path must not be empty");
  if (addr.sun_path[0] != '/' && addr.sun_path[0] != '@') {
    return ThrowInvalid(env, "notify socket path must be absolute or start with @ (abstract)");
  }
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  // Abstract names count their exact length; filesystem paths their NUL too.
  socklen_t addrlen = offsetof(sockaddr_un, sun_path) + len + (addr.sun_path[0] == '\0' ? 0 : 1);
  void* data;
  size_t n;
  if (!GetBytes(env, argv[1], "message", &data, &n)) return nullptr;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  ssize_t r;
  do {
    r = sendto(fd, data, n, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), addrlen);
  } while (r < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (r < 0) return ThrowErrno(env, err, "sendto", addr.sun_path[0] == '\0' ? "(abstract socket)" : addr.sun_path);
  return nullptr;
}

}  // namespace

void InitNotify(napi_env env, napi_value exports) {
  static const Fn fns[] = {{"notifyDatagram", NotifyDatagram}};
  DefineFunctions(env, exports, fns, sizeof fns / sizeof fns[0]);
}

}  // namespace uvfio
