// Region accesses answered in the native layer: a vfio-user REGION_READ or
// REGION_WRITE of a region whose whole memory is plain (no side effect, no
// check beyond the range) is served from C++ while a socket lingers, with
// no call into JavaScript. Everything else (any other command, a flag,
// range or size this code does not take as it is, fds) is left, in order,
// to the JavaScript session, which serves and refuses as it always does.
// Only whole messages at the start of a read are answered, and only while
// the session said, right before the linger, that such an access would be
// served at once: no JavaScript runs until the linger returns, so what it
// checked stays true meanwhile.
#pragma once

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace uvfio {

// Region indexes answers can cover (PCI's nine and room to spare).
constexpr uint32_t kAnswerRegions = 16;
// The largest access answered: a reply this size stays one sendmsg the
// kernel takes whole or nearly; larger reads go to the session, which
// waits for a slow reader (sendmsgWait).
constexpr uint32_t kAnswerMax = 64 * 1024;
// Bytes of requests one linger answers at most before the loop has its
// turn: a peer flooding small requests gets no more of the thread than one
// readable event gives it in JavaScript.
constexpr size_t kAnswerBytesPerLinger = 256 * 1024;

// What the JavaScript side reads back: a Float64Array of these counts,
// added to as answers are made (it zeroes them when it has read them).
enum AnswerStat : int {
  kReadsAnswered = 0,  // reads (of the socket) answered whole
  kMessagesIn,         // requests answered
  kBytesIn,            // their bytes
  kRepliesOut,         // replies sent (a posted write gets none)
  kBytesOut,           // their bytes
  kUnsentBytes,        // bytes of a reply the kernel did not take (takeUnsent)
  kAnswerStats,
};

struct AnswerMemory {
  uint8_t* data = nullptr;
  size_t len = 0;
  napi_ref ref = nullptr;  // keeps the view (and its memory) alive
};

struct Answers {
  napi_ref stats_ref = nullptr;
  double* stats = nullptr;
  uint32_t max_count = 0;
  AnswerMemory read[kAnswerRegions];
  AnswerMemory write[kAnswerRegions];
  // The rest of a reply the kernel took in part: the owner must send it
  // before anything else (takeUnsent), so answering stops until it has.
  std::vector<uint8_t> unsent;
};

// Reads answer(stats, maxCount, regions) arguments into a new Answers, or
// throws and returns nullptr. regions: an array indexed by region whose
// entries are undefined or {read: Uint8Array | null, write: ...}.
Answers* NewAnswers(napi_env env, napi_value stats, napi_value max_count, napi_value regions);
void DeleteAnswers(napi_env env, Answers* a);

// Answers the whole, answerable messages at the start of buf[0, n) on
// socket `fd`, in order, stopping at the first that is not. Returns the
// bytes answered. Stops too once a reply could not be sent whole (its
// rest in a.unsent) or the send failed (*err set to its errno: the peer
// is gone or broken; *err stays 0 otherwise).
size_t AnswerFront(int fd, Answers& a, const uint8_t* buf, size_t n, int* err);

// The unsent rest of a reply, as a new Uint8Array (empty when none), and
// forgets it.
napi_value TakeUnsent(napi_env env, Answers& a);

}  // namespace uvfio
