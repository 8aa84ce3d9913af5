// File reads that never wait for a disk: preadv2(RWF_NOWAIT) answers from
// the page cache at once, or says EAGAIN, so the caller may copy on its
// event loop what is cached and hand the rest to a thread.
#include <errno.h>
#include <sys/uio.h>

#include "common.h"

namespace uvfio {
namespace {

// preadNoWait(fd, dest, position) -> bytes read (0 at end of file), or -1
// when nothing could be read without waiting (EAGAIN). Other errors throw.
napi_value PreadNoWait(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  if (!GetFdArgs(env, info, argv, 3, &fd)) return nullptr;
  void* data;
  size_t len;
  uint64_t position;
  if (!GetBytes(env, argv[1], "dest", &data, &len)) return nullptr;
  if (!GetSize(env, argv[2], "position", &position)) return nullptr;
  struct iovec iov = {data, len};
  ssize_t n;
  do {
    n = preadv2(fd, &iov, 1, static_cast<off_t>(position), RWF_NOWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) n = -1;
  else if (n < 0) return ThrowErrno(env, errno, "preadv2");
  napi_value out;
  napi_create_int64(env, static_cast<int64_t>(n), &out);
  return out;
}

}  // namespace

void InitFileIo(napi_env env, napi_value exports) {
  static const Fn fns[] = {{"preadNoWait", PreadNoWait}};
  DefineFunctions(env, exports, fns, sizeof fns / sizeof fns[0]);
}

}  // namespace uvfio
