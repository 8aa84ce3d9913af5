// Region accesses answered in the native layer: a vfio-user REGION_READ or
// REGION_WRITE of a region whose whole memory is plain (no side effect, no
// check beyond the range) is served from C++, with no call into
// JavaScript, while a socket lingers or at its readable event. Everything
// else (any other command, a flag, range or size this code does not take
// as it is, fds) is left, in order, to the JavaScript session, which
// serves and refuses as it always does.
// Only whole messages at the start of a read are answered, and only while
// the session says such an access would be served at once: in a linger,
// as it checked right before (no JavaScript runs until the linger
// returns); at a readable event, as its blocker cells say (the owner sets
// one whenever that stops being true, and clears them only after checking
// again).
#pragma once

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace uvfio {

// Region indexes answers can cover (PCI's nine and room to spare).
constexpr uint32_t kAnswerRegions = 16;
// The largest access answered from a read's bytes (a write's data in the
// read, a read's reply sent without waiting). Larger reads are answered
// too, their reply's rest sent as the client reads it (SendWait); larger
// writes only when their data is received in place (PlaceOf).
constexpr uint32_t kAnswerMax = 64 * 1024;
// Writes of at least this many bytes are received straight into region
// memory when they follow one another (Answers::place_next): below it a
// copy costs less than the receive it would save.
constexpr uint32_t kPlaceMin = 16 * 1024;
// What a read takes first while place_next: a header and access struct.
constexpr size_t kPlaceHead = 32;
// How long the data of a placed write larger than one read may be waited
// for (ReceiveWait), before the owner is given its head and what landed.
constexpr uint32_t kPlaceWaitUs = 1000;

// Skips waits for a while after one ran out: 1, 3, 7 ... up to `max`
// tries, halving with each wait that did not (LingerBackoff's rule).
struct WaitBackoff {
  uint32_t max = 255;
  uint32_t penalty = 0;
  uint32_t skips = 0;
  bool TryNow() {
    if (skips == 0) return true;
    skips--;
    return false;
  }
  void Busy() {
    penalty = penalty * 2 + 1 < max ? penalty * 2 + 1 : max;
    skips = penalty;
  }
  void Got() { penalty >>= 1; }
};

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
  kLandedBytes,        // data of the write whose head the owner gets next, landed in place already
  kLandedRegion,       // that write's region
  kLandedOffset,       // and offset (below 2^53: inside a region's memory)
  kAnswerStats,
};

struct AnswerMemory {
  uint8_t* data = nullptr;
  size_t len = 0;
  napi_ref ref = nullptr;  // keeps the view (and its memory) alive
};

// One Int32Array cell of the owner's: nonzero while it keeps answers from
// being made at readable events (answer.h's header: no JavaScript ran
// since it was written, so what it says holds).
struct AnswerBlocker {
  const int32_t* at = nullptr;
  napi_ref ref = nullptr;
};

struct Answers {
  napi_ref stats_ref = nullptr;
  double* stats = nullptr;
  // The largest access answered from the read it came in (a write's data
  // there) or sent without waiting (a read's reply): maxCount, at most
  // kAnswerMax.
  uint32_t max_count = 0;
  // The largest write whose data is received in place (PlaceOf): maxCount
  // as given, uncapped (what the session accepts).
  uint32_t max_place = 0;
  // Reads a readable event may answer whole, its own wait for the next
  // included (as a linger); 0: answers are made only in lingers.
  uint32_t event_reads = 0;
  std::vector<AnswerBlocker> blockers;
  AnswerMemory read[kAnswerRegions];
  AnswerMemory write[kAnswerRegions];
  // The rest of a reply the kernel took in part: the owner must send it
  // before anything else (takeUnsent), so answering stops until it has.
  std::vector<uint8_t> unsent;
  // The last read ended with a write of kPlaceMin bytes or more: the next
  // read takes only a header and access struct, so that the data of such
  // a write lands in its place with no copy (PlaceOf).
  bool place_next = false;
  // Whether a placed write's data may be waited for (kPlaceWaitUs).
  WaitBackoff place_waits{64};
  // Whether the rest of a large read's reply may be waited out (kPlaceWaitUs).
  WaitBackoff reply_waits{64};
};

// Reads answer(stats, maxCount, regions, blockers, eventReads) arguments
// into a new Answers, or throws and returns nullptr. regions: an array
// indexed by region whose entries are undefined or {read: Uint8Array |
// null, write: ...}; blockers: undefined or an array of Int32Arrays.
Answers* NewAnswers(napi_env env, const napi_value* argv);

// True when a readable event may answer: event_reads > 0 and no blocker
// cell is set.
bool MayAnswerAtEvent(const Answers& a);
void DeleteAnswers(napi_env env, Answers* a);

// Answers the whole, answerable messages at the start of buf[0, n) on
// socket `fd`, in order, stopping at the first that is not. Returns the
// bytes answered. Stops too once a reply could not be sent whole (its
// rest in a.unsent) or the send failed (*err set to its errno: the peer
// is gone or broken; *err stays 0 otherwise).
size_t AnswerFront(int fd, Answers& a, const uint8_t* buf, size_t n, int* err);

// Where the data of the write whose header and access struct are `head`
// (kPlaceHead bytes) goes, when it is an answerable write of at least
// kPlaceMin bytes and at most max_place (its count in *count); null
// otherwise.
uint8_t* PlaceOf(const Answers& a, const uint8_t* head, uint32_t* count);

// Tells the owner (kLandedBytes, kLandedRegion, kLandedOffset) that
// `landed` bytes of the placed write of `head` are in place already.
void NoteLanded(Answers& a, const uint8_t* head, size_t landed);

// Answers the write of `head` whose data has landed (PlaceOf): counted,
// and replied to unless posted. False when the send failed (*err).
bool AnswerPlaced(int fd, Answers& a, const uint8_t* head, int* err);

// The unsent rest of a reply, as a new Uint8Array (empty when none, or
// with no answers), and forgets it.
napi_value TakeUnsent(napi_env env, Answers* a);

}  // namespace uvfio
