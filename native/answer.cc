// Region accesses answered in the native layer (see answer.h).
#include "answer.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common.h"
#include "receive.h"

namespace uvfio {

namespace {

// The wire format (little-endian, as vfio-user is and as every host Node
// runs this addon on): a 16-byte header, then for both commands the
// 16-byte access struct {offset u64, region u32, count u32}.
constexpr size_t kHeader = 16;
constexpr size_t kAccess = 32;  // header + access struct
constexpr uint16_t kRegionRead = 9;
constexpr uint16_t kRegionWrite = 10;
constexpr uint32_t kNoReply = 0x10;
constexpr uint32_t kTypeReply = 1;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void Store(uint8_t* p, T v) {
  memcpy(p, &v, sizeof v);
}

// The region memory an access goes to, or null when it is not answered here.
const AnswerMemory* Target(const AnswerMemory* table, uint32_t region, uint64_t offset, uint32_t count, uint32_t max) {
  if (region >= kAnswerRegions || count == 0 || count > max) return nullptr;
  const AnswerMemory* m = &table[region];
  if (m->data == nullptr || offset > m->len || count > m->len - offset) return nullptr;
  return m;
}

void Forget(napi_env env, AnswerMemory& m) {
  if (m.ref != nullptr) napi_delete_reference(env, m.ref);
  m = AnswerMemory();
}

bool GetMemory(napi_env env, napi_value entry, const char* key, AnswerMemory* out) {
  napi_value v;
  if (napi_get_named_property(env, entry, key, &v) != napi_ok) return false;
  if (IsNullish(env, v)) return true;
  void* data;
  size_t len;
  if (!GetBytes(env, v, "region memory", &data, &len)) return false;
  out->data = static_cast<uint8_t*>(data);
  out->len = len;
  napi_create_reference(env, v, 1, &out->ref);
  return true;
}

// Sends head[0, head_len) then body[0, body_len) as one reply; what the
// kernel does not take goes to a.unsent. False when the send failed.
bool Reply(int fd, Answers& a, uint8_t* head, size_t head_len, const uint8_t* body, size_t body_len, int* err) {
  struct iovec iov[2] = {{head, head_len}, {const_cast<uint8_t*>(body), body_len}};
  struct msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = body_len > 0 ? 2 : 1;
  ssize_t sent;
  do {
    sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    *err = errno;
    return false;
  }
  size_t done = sent < 0 ? 0 : static_cast<size_t>(sent);
  size_t total = head_len + body_len;
  if (done < total && body_len > kAnswerMax && a.reply_waits.TryNow()) {
    // A large read's rest as a blocking send would send it, the client
    // reading each piece as it goes (SendWait, kPlaceWaitUs; skipped for a
    // while after a wait ran out), rather than copied to be queued.
    size_t from = done > head_len ? done - head_len : 0;
    size_t head_at = done < head_len ? done : head_len;
    int wait_err = 0;
    ssize_t more = SendWait(fd, head + head_at, head_len - head_at, body + from, body_len - from, kPlaceWaitUs, &wait_err);
    if (more < 0 && wait_err != 0) {
      *err = wait_err;
      return false;
    }
    if (more > 0) done += static_cast<size_t>(more);
    if (done == total) a.reply_waits.Got();
    else a.reply_waits.Busy();
  }
  if (done < head_len) a.unsent.insert(a.unsent.end(), head + done, head + head_len);
  size_t from = done > head_len ? done - head_len : 0;
  if (from < body_len) a.unsent.insert(a.unsent.end(), body + from, body + body_len);
  a.stats[kUnsentBytes] = static_cast<double>(a.unsent.size());
  a.stats[kRepliesOut] += 1;
  a.stats[kBytesOut] += static_cast<double>(head_len + body_len);
  return true;
}

// The reply to the access `m` (header and access struct): the same, made a
// reply of the right size, a read's data after it.
bool ReplyTo(int fd, Answers& a, const uint8_t* m, const uint8_t* body, uint32_t count, int* err) {
  uint8_t reply[kAccess];
  memcpy(reply, m, kAccess);
  Store<uint32_t>(reply + 4, static_cast<uint32_t>(kAccess + (body != nullptr ? count : 0)));
  Store<uint32_t>(reply + 8, kTypeReply);
  Store<uint32_t>(reply + 12, 0);
  return Reply(fd, a, reply, kAccess, body, body != nullptr ? count : 0, err);
}

// The data of `v` when it is a typed array of `type` with at least `min`
// elements; else nullptr, after throwing EINVAL with `sentence`.
void* TypedData(napi_env env, napi_value v, napi_typedarray_type type, size_t min, const char* sentence) {
  bool typed = false;
  napi_typedarray_type got;
  size_t count = 0;
  void* data = nullptr;
  napi_is_typedarray(env, v, &typed);
  if (!typed || napi_get_typedarray_info(env, v, &got, &count, &data, nullptr, nullptr) != napi_ok || got != type ||
      count < min) {
    ThrowInvalid(env, sentence);
    return nullptr;
  }
  return data;
}

}  // namespace

void NoteLanded(Answers& a, const uint8_t* head, size_t landed) {
  a.stats[kLandedBytes] = static_cast<double>(landed);
  a.stats[kLandedRegion] = static_cast<double>(Load<uint32_t>(head + kHeader + 8));
  a.stats[kLandedOffset] = static_cast<double>(Load<uint64_t>(head + kHeader));
}

bool MayAnswerAtEvent(const Answers& a) {
  if (a.event_reads == 0) return false;
  for (const AnswerBlocker& b : a.blockers) {
    if (*b.at != 0) return false;
  }
  return true;
}

// Reads the blockers argument (undefined: none) into a.
bool GetBlockers(napi_env env, napi_value v, Answers* a) {
  if (IsNullish(env, v)) return true;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array) {
    ThrowInvalid(env, "blockers must be an array of Int32Arrays");
    return false;
  }
  napi_get_array_length(env, v, &n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value cell;
    napi_get_element(env, v, i, &cell);
    void* data = TypedData(env, cell, napi_int32_array, 1, "a blocker must be an Int32Array of at least one cell");
    if (data == nullptr) return false;
    AnswerBlocker b;
    b.at = static_cast<const int32_t*>(data);
    napi_create_reference(env, cell, 1, &b.ref);
    a->blockers.push_back(b);
  }
  return true;
}

Answers* NewAnswers(napi_env env, const napi_value* argv) {
  napi_value stats = argv[0], max_count = argv[1], regions = argv[2];
  int32_t max, event_reads = 0;
  void* data = TypedData(env, stats, napi_float64_array, kAnswerStats, "answer stats must be a Float64Array of at least 9 counts");
  if (data == nullptr) return nullptr;
  if (!GetInt32(env, max_count, "maxCount", &max)) return nullptr;
  if (!IsNullish(env, argv[4]) && !GetInt32(env, argv[4], "eventReads", &event_reads)) return nullptr;
  if (max < 0 || event_reads < 0) {
    ThrowInvalid(env, "maxCount and eventReads must not be negative");
    return nullptr;
  }
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, regions, &is_array) != napi_ok || !is_array) {
    ThrowInvalid(env, "regions must be an array");
    return nullptr;
  }
  napi_get_array_length(env, regions, &n);
  if (n > kAnswerRegions) {
    ThrowInvalid(env, "regions must have at most 16 entries");
    return nullptr;
  }
  Answers* a = new Answers();
  for (uint32_t i = 0; i < n; i++) {
    napi_value entry;
    napi_valuetype t;
    napi_get_element(env, regions, i, &entry);
    if (napi_typeof(env, entry, &t) != napi_ok || t == napi_undefined || t == napi_null) continue;
    if (t != napi_object || !GetMemory(env, entry, "read", &a->read[i]) || !GetMemory(env, entry, "write", &a->write[i])) {
      if (t != napi_object) ThrowInvalid(env, "a region entry must be an object or undefined");
      DeleteAnswers(env, a);
      return nullptr;
    }
  }
  if (!GetBlockers(env, argv[3], a)) {
    DeleteAnswers(env, a);
    return nullptr;
  }
  a->event_reads = static_cast<uint32_t>(event_reads);
  a->stats = static_cast<double*>(data);
  napi_create_reference(env, stats, 1, &a->stats_ref);
  a->max_count = static_cast<uint32_t>(max) < kAnswerMax ? static_cast<uint32_t>(max) : kAnswerMax;
  a->max_place = static_cast<uint32_t>(max);
  return a;
}

void DeleteAnswers(napi_env env, Answers* a) {
  if (a == nullptr) return;
  for (uint32_t i = 0; i < kAnswerRegions; i++) {
    Forget(env, a->read[i]);
    Forget(env, a->write[i]);
  }
  for (AnswerBlocker& b : a->blockers) napi_delete_reference(env, b.ref);
  if (a->stats_ref != nullptr) napi_delete_reference(env, a->stats_ref);
  delete a;
}

uint8_t* PlaceOf(const Answers& a, const uint8_t* head, uint32_t* count) {
  uint32_t size = Load<uint32_t>(head + 4);
  uint32_t flags = Load<uint32_t>(head + 8);
  *count = Load<uint32_t>(head + kHeader + 12);
  if (Load<uint16_t>(head + 2) != kRegionWrite || (flags & ~kNoReply) != 0 || *count < kPlaceMin) return nullptr;
  const AnswerMemory* mem = Target(a.write, Load<uint32_t>(head + kHeader + 8), Load<uint64_t>(head + kHeader), *count, a.max_place);
  if (mem == nullptr || size != kAccess + *count) return nullptr;
  return mem->data + Load<uint64_t>(head + kHeader);
}

bool AnswerPlaced(int fd, Answers& a, const uint8_t* head, int* err) {
  uint32_t size = Load<uint32_t>(head + 4);
  a.stats[kMessagesIn] += 1;
  a.stats[kBytesIn] += static_cast<double>(size);
  if ((Load<uint32_t>(head + 8) & kNoReply) != 0) return true;
  return ReplyTo(fd, a, head, nullptr, 0, err);
}

size_t AnswerFront(int fd, Answers& a, const uint8_t* buf, size_t n, int* err) {
  size_t at = 0;
  a.place_next = false;
  while (a.unsent.empty() && n - at >= kAccess) {
    const uint8_t* m = buf + at;
    uint16_t cmd = Load<uint16_t>(m + 2);
    uint32_t size = Load<uint32_t>(m + 4);
    uint32_t flags = Load<uint32_t>(m + 8);
    uint64_t offset = Load<uint64_t>(m + kHeader);
    uint32_t region = Load<uint32_t>(m + kHeader + 8);
    uint32_t count = Load<uint32_t>(m + kHeader + 12);
    // A command (type 0), with no flag but NO_REPLY, of the exact size.
    if ((flags & ~kNoReply) != 0 || size > n - at) break;
    bool posted = (flags & kNoReply) != 0;
    const uint8_t* body = nullptr;
    if (cmd == kRegionRead) {
      // Reads larger than the rest (up to what the session accepts) too:
      // their reply leaves straight from the memory.
      const AnswerMemory* mem = Target(a.read, region, offset, count, a.max_place);
      if (mem == nullptr || size != kAccess) break;
      body = mem->data + offset;
    } else if (cmd == kRegionWrite) {
      const AnswerMemory* mem = Target(a.write, region, offset, count, a.max_count);
      if (mem == nullptr || size != kAccess + count) break;
      memcpy(mem->data + offset, m + kAccess, count);
    } else {
      break;
    }
    at += size;
    a.stats[kMessagesIn] += 1;
    a.stats[kBytesIn] += static_cast<double>(size);
    // A large write that ends the read: the next is likely one too.
    a.place_next = cmd == kRegionWrite && count >= kPlaceMin && at == n;
    if (posted) continue;
    if (!ReplyTo(fd, a, m, body, count, err)) break;
  }
  return at;
}

napi_value TakeUnsent(napi_env env, Answers* a) {
  napi_value ab, out;
  void* data = nullptr;
  size_t len = a != nullptr ? a->unsent.size() : 0;
  napi_create_arraybuffer(env, len, &data, &ab);
  if (len > 0) memcpy(data, a->unsent.data(), len);
  napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &out);
  if (a != nullptr) {
    a->unsent.clear();
    a->stats[kUnsentBytes] = 0;
  }
  return out;
}

}  // namespace uvfio
