// eventfd: the doorbell of vfio-user interrupts. The client hands the
// server one per vector (SET_IRQS) and the server writes to it.
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common.h"

namespace uvfio {

namespace {

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
  static const Fn fns[] = {
      {"eventfd", EventFd}, {"eventfdWrite", EventFdWrite}, {"eventfdRead", EventFdRead}};
  DefineFunctions(env, exports, fns, sizeof fns / sizeof fns[0]);
}

}  // namespace uvfio
