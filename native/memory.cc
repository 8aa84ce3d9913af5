// Shared memory: memfds for memory the server hands out (BARs), mmap for
// memory a client hands in (DMA regions). A mapping reaches JS as an
// external ArrayBuffer; munmap detaches it first, so no JS view can ever
// touch unmapped memory, and a finalizer unmaps what the program forgot.
//
// Client memory for DMA is mapped differently (mapClientMemory): one
// mmap, no ArrayBuffer at all until a view is asked for. Each external
// ArrayBuffer counts its length as V8 external memory, and a client's
// terabytes of sparse memfd made of 1 GiB buffers triggered a garbage
// collection per GiB (seconds of a frozen event loop for one message).
// Reads and writes are copies done here, checked against the mapping;
// views come from windows made on demand, detached before the unmap.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace uvfio {

namespace {

// The longest ArrayBuffer Node 20 makes (buffer.constants.MAX_LENGTH).
constexpr uint64_t kMaxArrayBuffer = 1ULL << 32;

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
  // Node cannot make a longer ArrayBuffer, and on failing it runs the
  // finalizer at once: refuse before, so nothing is freed twice.
  if (length > kMaxArrayBuffer) return ThrowErrno(env, EINVAL, "mmap (longer than an ArrayBuffer may be)", range);
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

// ---- client memory ----------------------------------------------------------

// memoryFdInfo(fd) -> [regular, size, fsType, seals]: what DMA_MAP needs to
// know of a client's fd to reach its memory safely. seals is -1 where the
// file cannot carry seals (anything but a memfd); fsType is statfs's f_type.
napi_value MemoryFdInfo(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  int32_t fd;
  if (!GetFdArgs(env, info, argv, 1, &fd)) return nullptr;
  struct stat st;
  if (fstat(fd, &st) != 0) return ThrowErrno(env, errno, "fstat");
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) return ThrowErrno(env, errno, "fstatfs");
  int seals = fcntl(fd, F_GET_SEALS);
  napi_create_array_with_length(env, 6, &out);
  napi_get_boolean(env, S_ISREG(st.st_mode), &v);
  napi_set_element(env, out, 0, v);
  napi_set_element(env, out, 1, Number(env, static_cast<double>(st.st_size)));
  napi_set_element(env, out, 2, Number(env, static_cast<double>(static_cast<uint32_t>(sfs.f_type))));
  napi_set_element(env, out, 3, Number(env, seals < 0 ? -1 : seals));
  // Which file it is (two fds of one memfd are one file): doubles, exact below 2^53.
  napi_set_element(env, out, 4, Number(env, static_cast<double>(st.st_dev)));
  napi_set_element(env, out, 5, Number(env, static_cast<double>(st.st_ino)));
  return out;
}

// One client mapping. Alive while its handle or any window is; unmapped
// at unmapClientMemory, or when the last of them is collected.
struct ClientMapping {
  char* base;       // the client's byte 0 (inside the mapping)
  size_t length;    // bytes from base
  void* map_addr;   // what mmap returned
  size_t map_length;
  bool writable;
  bool closed = false;    // no more access through the handle
  bool unmapped = false;  // munmap done
  int refs = 1;           // the handle, plus one per window
};

void DropRef(ClientMapping* m) {
  if (--m->refs > 0) return;
  if (!m->unmapped) munmap(m->map_addr, m->map_length);
  delete m;
}

void FinalizeHandle(napi_env, void* data, void*) { DropRef(static_cast<ClientMapping*>(data)); }

void FinalizeWindow(napi_env, void*, void* hint) { DropRef(static_cast<ClientMapping*>(hint)); }

bool GetMapping(napi_env env, napi_value v, ClientMapping** out) {
  void* data = nullptr;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok) {
    ThrowInvalid(env, "a client memory handle from mapClientMemory is needed");
    return false;
  }
  *out = static_cast<ClientMapping*>(data);
  if ((*out)->closed) {
    ThrowErrno(env, EFAULT, "client memory", "(unmapped)");
    return false;
  }
  return true;
}

// mapClientMemory(fd, offset, length, writable) -> handle. One MAP_SHARED
// mapping of the fd's [offset, offset+length) (an unaligned offset is
// mapped from the page below); writable only when asked. The caller has
// made sure the range cannot shrink away (a size-sealed memfd).
napi_value MapClientMemory(napi_env env, napi_callback_info info) {
  napi_value argv[4], handle;
  int32_t fd;
  uint64_t offset, length;
  bool writable;
  if (!GetFdArgs(env, info, argv, 4, &fd) || !GetSize(env, argv[1], "offset", &offset) ||
      !GetSize(env, argv[2], "length", &length)) {
    return nullptr;
  }
  if (napi_get_value_bool(env, argv[3], &writable) != napi_ok) return ThrowInvalid(env, "writable must be a boolean");
  if (length == 0) return ThrowErrno(env, EINVAL, "mmap (length 0)");
  struct stat st;
  if (fstat(fd, &st) != 0) return ThrowErrno(env, errno, "fstat");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || offset > size || length > size - offset) {
    return ThrowErrno(env, EINVAL, "mmap (beyond end of file)");
  }
  uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t skip = offset % page;
  size_t map_length = static_cast<size_t>(length + skip);
  void* addr = mmap(nullptr, map_length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
                    static_cast<off_t>(offset - skip));
  if (addr == MAP_FAILED) return ThrowErrno(env, errno, "mmap");
  auto* m = new ClientMapping{static_cast<char*>(addr) + skip, static_cast<size_t>(length), addr, map_length, writable};
  if (napi_create_external(env, m, FinalizeHandle, nullptr, &handle) != napi_ok) {
    munmap(addr, map_length);
    delete m;
    return ThrowErrno(env, ENOMEM, "mmap (handle)");
  }
  return handle;
}

bool GetRange(napi_env env, ClientMapping* m, napi_value off_v, size_t n, uint64_t* off) {
  if (!GetSize(env, off_v, "offset", off)) return false;
  if (*off > m->length || n > m->length - *off) {
    ThrowErrno(env, EFAULT, "client memory", "(outside the mapping)");
    return false;
  }
  return true;
}

// The arguments of a copy: (handle, offset, bytes), checked against the mapping.
bool CopyArgs(napi_env env, napi_callback_info info, const char* what, ClientMapping** m, char** at, void** data, size_t* n) {
  napi_value argv[3];
  uint64_t off;
  GetArgs(env, info, argv, 3);
  if (!GetMapping(env, argv[0], m) || !GetBytes(env, argv[2], what, data, n) || !GetRange(env, *m, argv[1], *n, &off)) {
    return false;
  }
  *at = (*m)->base + off;
  return true;
}

// clientMemoryRead(handle, offset, dest): copies dest's length of bytes.
napi_value ClientMemoryRead(napi_env env, napi_callback_info info) {
  ClientMapping* m;
  char* at;
  void* data;
  size_t n;
  if (CopyArgs(env, info, "dest", &m, &at, &data, &n)) memcpy(data, at, n);
  return nullptr;
}

// clientMemoryWrite(handle, offset, src): EPERM on a read-only mapping.
napi_value ClientMemoryWrite(napi_env env, napi_callback_info info) {
  ClientMapping* m;
  char* at;
  void* data;
  size_t n;
  if (!CopyArgs(env, info, "src", &m, &at, &data, &n)) return nullptr;
  if (!m->writable) return ThrowErrno(env, EPERM, "client memory", "(mapped read-only)");
  memcpy(at, data, n);
  return nullptr;
}

// clientMemoryWindow(handle, offset, length) -> ArrayBuffer over those
// bytes; the caller keeps it and hands it to unmapClientMemory, which
// detaches it. The mapping stays while a window is alive. Read-only
// mappings have none (a store through a view would kill the process).
napi_value ClientMemoryWindow(napi_env env, napi_callback_info info) {
  napi_value argv[3], ab;
  ClientMapping* m;
  uint64_t off, length;
  GetArgs(env, info, argv, 3);
  if (!GetMapping(env, argv[0], &m) || !GetSize(env, argv[2], "length", &length) ||
      !GetRange(env, m, argv[1], static_cast<size_t>(length), &off)) {
    return nullptr;
  }
  if (!m->writable) return ThrowErrno(env, EPERM, "client memory view", "(mapped read-only)");
  if (length > kMaxArrayBuffer) return ThrowErrno(env, EINVAL, "client memory view", "(longer than an ArrayBuffer may be)");
  // Counted first: should creating it fail, Node may or may not have run
  // the finalizer; a count too high only keeps the struct, never the pages.
  m->refs++;
  if (napi_create_external_arraybuffer(env, m->base + off, static_cast<size_t>(length), FinalizeWindow, m, &ab) != napi_ok) {
    return ThrowErrno(env, ENOMEM, "client memory view");
  }
  return ab;
}

// unmapClientMemory(handle, windows): detaches every window made of it
// (the caller kept them all), then unmaps. Idempotent. Should a window
// not be detached, views would still reach the pages: then they stay
// mapped until the window is collected, and it throws.
napi_value UnmapClientMemory(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void* data = nullptr;
  uint32_t n = 0;
  GetArgs(env, info, argv, 2);
  if (napi_get_value_external(env, argv[0], &data) != napi_ok) return ThrowInvalid(env, "a client memory handle is needed");
  if (napi_get_array_length(env, argv[1], &n) != napi_ok) return ThrowInvalid(env, "windows must be an array");
  ClientMapping* m = static_cast<ClientMapping*>(data);
  if (m->closed) return nullptr;
  m->closed = true;
  bool stuck = false;
  for (uint32_t i = 0; i < n; i++) {
    napi_value ab;
    bool is_ab = false, detached = false;
    if (napi_get_element(env, argv[1], i, &ab) != napi_ok || napi_is_arraybuffer(env, ab, &is_ab) != napi_ok || !is_ab) continue;
    if (napi_is_detached_arraybuffer(env, ab, &detached) == napi_ok && detached) continue;
    if (napi_detach_arraybuffer(env, ab) != napi_ok) stuck = true;
  }
  if (stuck) {
    // Never unmapped: leaking the pages is better than a fault.
    m->refs++;
    return ThrowErrno(env, EBUSY, "client memory", "(a view could not be detached)");
  }
  munmap(m->map_addr, m->map_length);
  m->unmapped = true;
  return nullptr;
}

}  // namespace

void InitMemory(napi_env env, napi_value exports) {
  static const Fn fns[] = {{"memfdCreate", MemfdCreate},
                           {"sealSize", SealSize},
                           {"mmap", Mmap},
                           {"munmap", Munmap},
                           {"memoryFdInfo", MemoryFdInfo},
                           {"mapClientMemory", MapClientMemory},
                           {"clientMemoryRead", ClientMemoryRead},
                           {"clientMemoryWrite", ClientMemoryWrite},
                           {"clientMemoryWindow", ClientMemoryWindow},
                           {"unmapClientMemory", UnmapClientMemory}};
  DefineFunctions(env, exports, fns, sizeof fns / sizeof fns[0]);
}

}  // namespace uvfio
