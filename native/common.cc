// Argument parsing and error construction.
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

namespace uvfio {

// The error factory is per environment: each worker loads its own addon
// instance and has its own VfioError class.
static napi_ref ErrorFactory(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<napi_ref>(data);
}

// The VfioError for `err`; nullptr with an exception pending if even that failed.
static napi_value MakeError(napi_env env, int err, const char* sentence) {
  napi_ref ref = ErrorFactory(env);
  napi_value factory = nullptr, argv[2], global, error, message;
  if (ref != nullptr) napi_get_reference_value(env, ref, &factory);
  if (factory == nullptr) {  // only if the loader never ran
    napi_create_string_utf8(env, sentence, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, nullptr, message, &error);
    return error;
  }
  napi_create_int32(env, err, &argv[0]);
  napi_create_string_utf8(env, sentence, NAPI_AUTO_LENGTH, &argv[1]);
  napi_get_global(env, &global);
  // Should the factory itself throw, that exception stays pending: fine.
  return napi_call_function(env, global, factory, 2, argv, &error) == napi_ok ? error : nullptr;
}

static void ThrowSentence(napi_env env, int err, const char* sentence) {
  if (napi_value error = MakeError(env, err, sentence)) napi_throw(env, error);
}

static void ErrnoSentence(char (&sentence)[512], int err, const char* syscall, const char* detail) {
  snprintf(sentence, sizeof sentence, "%s%s%s: %s", syscall, detail ? " " : "", detail ? detail : "",
           strerror(err));
}

napi_value ThrowErrno(napi_env env, int err, const char* syscall, const char* detail) {
  char sentence[512];
  ErrnoSentence(sentence, err, syscall, detail);
  ThrowSentence(env, err, sentence);
  return nullptr;
}

napi_value ErrnoValue(napi_env env, int err, const char* syscall, const char* detail) {
  char sentence[512];
  ErrnoSentence(sentence, err, syscall, detail);
  return MakeError(env, err, sentence);
}

napi_value ThrowInvalid(napi_env env, const char* sentence) {
  ThrowSentence(env, 22 /* EINVAL */, sentence);
  return nullptr;
}

static bool Expected(napi_env env, const char* what, const char* kind) {
  char sentence[160];
  snprintf(sentence, sizeof sentence, "%s must be %s", what, kind);
  ThrowInvalid(env, sentence);
  return false;
}

void GetArgs(napi_env env, napi_callback_info info, napi_value* argv, size_t n) {
  napi_get_cb_info(env, info, &n, argv, nullptr, nullptr);
}

bool GetFdArgs(napi_env env, napi_callback_info info, napi_value* argv, size_t n, int32_t* fd) {
  GetArgs(env, info, argv, n);
  return GetInt32(env, argv[0], "fd", fd);
}

bool GetInt32(napi_env env, napi_value v, const char* what, int32_t* out) {
  // napi_get_value_int32 would silently turn 1.5 into 1 and 2^40 into 0;
  // an fd that is not exactly an int32 is a caller bug worth reporting.
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != static_cast<int32_t>(d)) {
    return Expected(env, what, "a 32-bit integer");
  }
  *out = static_cast<int32_t>(d);
  return true;
}

bool GetSize(napi_env env, napi_value v, const char* what, uint64_t* out, bool* present) {
  if (present != nullptr && !(*present = !IsNullish(env, v))) return true;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 9007199254740991.0 ||
      d != floor(d)) {
    return Expected(env, what, "a non-negative safe integer");
  }
  *out = static_cast<uint64_t>(d);
  return true;
}

bool GetBytes(napi_env env, napi_value v, const char* what, void** data, size_t* len) {
  // Any ArrayBufferView's bytes (a TypedArray of any element type, a
  // DataView): napi_get_buffer_info takes them all, and skips the element
  // type napi_get_typedarray_info works out (every reply passes here).
  if (napi_get_buffer_info(env, v, data, len) == napi_ok) return true;
  return Expected(env, what, "a TypedArray or DataView");
}

bool GetString(napi_env env, napi_value v, const char* what, char* buf, size_t cap) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) {
    return Expected(env, what, "a string");
  }
  if (len + 1 > cap) {
    char sentence[160];
    snprintf(sentence, sizeof sentence, "%s is %zu bytes long; at most %zu fit", what, len, cap - 1);
    return ThrowInvalid(env, sentence), false;
  }
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  if (strlen(buf) != len) return Expected(env, what, "a string without NUL");
  return true;
}

bool GetFlag(napi_env env, napi_value obj, const char* key, bool* out) {
  *out = false;
  napi_value v;
  if (IsNullish(env, obj)) return true;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return false;
  if (IsNullish(env, v) || napi_get_value_bool(env, v, out) == napi_ok) return true;
  return Expected(env, key, "a boolean");
}

bool GetFdArray(napi_env env, napi_value v, int* fds, size_t* count) {
  uint32_t n;
  if (napi_get_array_length(env, v, &n) != napi_ok) {
    return Expected(env, "fds", "an array of file descriptors");
  }
  if (n > kMaxFds) return Expected(env, "fds", "at most 253 descriptors (SCM_MAX_FD)");
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    int32_t fd;
    if (napi_get_element(env, v, i, &e) != napi_ok || !GetInt32(env, e, "each fd", &fd)) return false;
    if (fd < 0) return Expected(env, "each fd", "non-negative");
    fds[i] = fd;
  }
  *count = n;
  return true;
}

bool IsNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null;
}

napi_value Number(napi_env env, double v) {
  napi_value r;
  // A small integer (a byte count, an fd) is made without a heap number.
  if (v >= -2147483648.0 && v <= 2147483647.0 && v == static_cast<double>(static_cast<int32_t>(v))) {
    napi_create_int32(env, static_cast<int32_t>(v), &r);
  } else {
    napi_create_double(env, v, &r);
  }
  return r;
}

void DefineFunctions(napi_env env, napi_value exports, const Fn* fns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, nullptr, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
}

// setErrorFactory(fn): the loader passes (errno, sentence) => VfioError.
static napi_value SetErrorFactory(napi_env env, napi_callback_info info) {
  napi_value fn;
  napi_valuetype t;
  GetArgs(env, info, &fn, 1);
  if (napi_typeof(env, fn, &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, nullptr, "setErrorFactory needs a function");
    return nullptr;
  }
  if (napi_ref old = ErrorFactory(env)) napi_delete_reference(env, old);
  napi_ref ref;
  napi_create_reference(env, fn, 1, &ref);
  auto release = [](napi_env env, void* ref, void*) {
    napi_delete_reference(env, static_cast<napi_ref>(ref));
  };
  napi_set_instance_data(env, ref, release, nullptr);
  return nullptr;
}

void InitErrors(napi_env env, napi_value exports) {
  static const Fn fns[] = {{"setErrorFactory", SetErrorFactory}};
  DefineFunctions(env, exports, fns, 1);
}

}  // namespace uvfio
