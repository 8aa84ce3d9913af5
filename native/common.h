// Shared helpers of the uvfio native addon: argument parsing and errors.
//
// Every failure leaves this addon as a VfioError. The addon cannot import
// the TypeScript class, so the loader hands it a factory at start-up
// (setErrorFactory) and the Throw* helpers call it: the hot path needs no
// JS-side try/catch wrapper.
#pragma once

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

namespace uvfio {

// SCM_MAX_FD in the kernel: the most fds one sendmsg may carry.
constexpr size_t kMaxFds = 253;

// Throws VfioError for `err` from `syscall`; `detail` (a path, a range)
// goes into the sentence. Return nullptr so callers can `return Throw...`.
napi_value ThrowErrno(napi_env env, int err, const char* syscall, const char* detail = nullptr);
// The VfioError ThrowErrno would throw, as a value (for a callback argument).
napi_value ErrnoValue(napi_env env, int err, const char* syscall, const char* detail = nullptr);
// Throws VfioError EINVAL for a bad argument coming from JS.
napi_value ThrowInvalid(napi_env env, const char* sentence);

// Reads `n` arguments into argv; missing ones read as undefined.
void GetArgs(napi_env env, napi_callback_info info, napi_value* argv, size_t n);

// Argument readers: each returns false after it has thrown.
// GetArgs, then the fd in argv[0].
bool GetFdArgs(napi_env env, napi_callback_info info, napi_value* argv, size_t n, int32_t* fd);
bool GetInt32(napi_env env, napi_value v, const char* what, int32_t* out);
// A safe non-negative integer (offsets, sizes). With `present`, undefined
// is allowed and reported there.
bool GetSize(napi_env env, napi_value v, const char* what, uint64_t* out, bool* present = nullptr);
// The bytes of any TypedArray or DataView.
bool GetBytes(napi_env env, napi_value v, const char* what, void** data, size_t* len);
// A UTF-8 string of at most cap - 1 bytes, NUL-terminated into buf.
bool GetString(napi_env env, napi_value v, const char* what, char* buf, size_t cap);
// A boolean property of an options object; absent means false.
bool GetFlag(napi_env env, napi_value obj, const char* key, bool* out);
// An array of at most kMaxFds fds.
bool GetFdArray(napi_env env, napi_value v, int* fds, size_t* count);

bool IsNullish(napi_env env, napi_value v);
napi_value Number(napi_env env, double v);

struct Fn {
  const char* name;
  napi_callback cb;
};
void DefineFunctions(napi_env env, napi_value exports, const Fn* fns, size_t n);

// Each part of the addon registers itself on `exports`.
void InitErrors(napi_env env, napi_value exports);
void InitSocket(napi_env env, napi_value exports);
void InitEventfd(napi_env env, napi_value exports);
void InitMemory(napi_env env, napi_value exports);
void InitWatcher(napi_env env, napi_value exports);
void InitNotify(napi_env env, napi_value exports);
void InitFileIo(napi_env env, napi_value exports);

}  // namespace uvfio
