// Shared memory: memfds for memory the server hands out (BARs), mmap for
// memory a client hands in (DMA regions). A mapping reaches JS as an
// external ArrayBuffer; munmap detaches it first, so no JS view can ever
// touch unmapped memory, and a finalizer unmaps what the program forgot.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <unordered_map>

#include "common.h"

namespace uvfio {

namespace {

struct Mapping {
  void* addr;
  size_t length;
  bool unmapped;
};

// Live mappings by address: lets munmap recognise its own ArrayBuffers and
// never unmap twice. Process-wide, since a finalizer may run after its
// addon instance is gone; locked, since workers share the process.
std::mutex registry_lock;
std::unordered_map<void*, Mapping*>& Registry() {
  static auto* registry = new std::unordered_map<void*, Mapping*>();
  return *registry;
}

// Runs when V8 frees the ArrayBuffer's backing store.
void FinalizeMapping(napi_env, void*, void* hint) {
  Mapping* m = static_cast<Mapping*>(hint);
  {
    std::lock_guard<std::mutex> guard(registry_lock);
    if (!m->unmapped) {
      munmap(m->addr, m->length);
      auto it = Registry().find(m->addr);
      if (it != Registry().end() && it->second == m) Registry().erase(it);
    }
  }
  delete m;
}

// memfdCreate(name, size?) -> fd (CLOEXEC; sealing allowed, see sealSize).
napi_value MemfdCreate(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[250];  // the kernel takes at most 249 bytes
  uint64_t size = 0;
  bool has_size;
  GetArgs(env, info, argv, 2);
  if (!GetString(env, argv[0], "memfd name", name, sizeof name) ||
      !GetSize(env, argv[1], "size", &size, &has_size)) {
    return nullptr;
  }
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return ThrowErrno(env, errno, "memfd_create", name);
  if (has_size && ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ftruncate", name);
  }
  return Number(env, fd);
}

// sealSize(fd): no shrinking or growing from now on, so a client given the
// fd cannot truncate it under the server's mapping (a touch of a truncated
// page is SIGBUS, which would kill the server).
napi_value SealSize(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!GetFdArgs(env, info, argv, 1, &fd)) return nullptr;
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) return ThrowErrno(env, errno, "F_ADD_SEALS");
  return nullptr;
}

// mmap(fd, offset, length, { read, write }) -> ArrayBuffer (MAP_SHARED).
napi_value Mmap(napi_env env, napi_callback_info info) {
  napi_value argv[4], ab;
  int32_t fd;
  uint64_t offset, length;
  bool rd, wr;
  if (!GetFdArgs(env, info, argv, 4, &fd) || !GetSize(env, argv[1], "offset", &offset) ||
      !GetSize(env, argv[2], "length", &length) || !GetFlag(env, argv[3], "read", &rd) ||
      !GetFlag(env, argv[3], "write", &wr)) {
    return nullptr;
  }
  // JS has no way to stay off unreadable memory: the first touch would SIGSEGV.
  if (!rd) return ThrowInvalid(env, "mmap needs prot.read: JS views read their memory");
  char range[80];
  snprintf(range, sizeof range, "offset %llu length %llu", static_cast<unsigned long long>(offset),
           static_cast<unsigned long long>(length));
  // The kernel refuses these with a bare EINVAL; say which one it was.
  if (offset % static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) != 0) {
    return ThrowErrno(env, EINVAL, "mmap (offset not page aligned)", range);
  }
  if (length == 0) return ThrowErrno(env, EINVAL, "mmap (length 0)", range);
  // The kernel maps past the end of a file, but a touch there is SIGBUS:
  // a client's short memfd must not be able to kill the server.
  struct stat st;
  if (fstat(fd, &st) != 0) return ThrowErrno(env, errno, "fstat");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (S_ISREG(st.st_mode) && (offset > size || length > size - offset)) {
    return ThrowErrno(env, EINVAL, "mmap (beyond end of file)", range);
  }
  int prot = PROT_READ | (wr ? PROT_WRITE : 0);
  void* addr = mmap(nullptr, length, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) return ThrowErrno(env, errno, "mmap", range);
  Mapping* m = new Mapping{addr, static_cast<size_t>(length), false};
  if (napi_create_external_arraybuffer(env, addr, length, FinalizeMapping, m, &ab) != napi_ok) {
    munmap(addr, length);
    delete m;
    return ThrowErrno(env, ENOMEM, "mmap (wrapping in an ArrayBuffer)");
  }
  std::lock_guard<std::mutex> guard(registry_lock);
  Registry()[addr] = m;
  return ab;
}

// munmap(buffer): detaches, then unmaps. A no-op on a detached buffer, so
// closing twice is harmless.
napi_value Munmap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool is_ab = false, detached = false;
  void* addr = nullptr;
  size_t length = 0;
  Mapping* m = nullptr;
  GetArgs(env, info, argv, 1);
  napi_is_arraybuffer(env, argv[0], &is_ab);
  if (is_ab && napi_is_detached_arraybuffer(env, argv[0], &detached) == napi_ok && detached) return nullptr;
  if (is_ab) napi_get_arraybuffer_info(env, argv[0], &addr, &length);
  {
    std::lock_guard<std::mutex> guard(registry_lock);  // never held while JS runs
    auto it = Registry().find(addr);
    if (it != Registry().end() && it->second->length == length) m = it->second;
  }
  if (m == nullptr) return ThrowInvalid(env, "munmap needs an ArrayBuffer returned by mmap");
  // Detach first: if that failed, views would still reach the pages, so
  // they must stay mapped.
  if (napi_detach_arraybuffer(env, argv[0]) != napi_ok) {
    return ThrowErrno(env, EINVAL, "munmap (ArrayBuffer not detachable)");
  }
  {
    std::lock_guard<std::mutex> guard(registry_lock);
    Registry().erase(addr);
    m->unmapped = true;
  }
  munmap(m->addr, m->length);  // fails only for bad arguments, ruled out above
  return nullptr;
}

}  // namespace

void InitMemory(napi_env env, napi_value exports) {
  static const Fn fns[] = {
      {"memfdCreate", MemfdCreate}, {"sealSize", SealSize}, {"mmap", Mmap}, {"munmap", Munmap}};
  DefineFunctions(env, exports, fns, sizeof fns / sizeof fns[0]);
}

}  // namespace uvfio
