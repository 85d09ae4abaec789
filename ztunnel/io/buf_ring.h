#pragma once

// BufRing: a provided-buffer ring (IORING_REGISTER_PBUF_RING) that multishot recv fills.
//
// The ring of buffer descriptors and the buffers themselves live in our own page-aligned mmap
// memory (liburing 2.3 has no io_uring_setup_buf_ring). `count` buffers of `bufferSize` bytes are
// registered under `groupId`; a recv with IOSQE_BUFFER_SELECT on that group picks one, and its CQE
// names it (bufferId(cqe->flags)).
//
// Ownership of a buffer:
//   kernel ring --(CQE with IORING_CQE_F_BUFFER)--> take() -> BufRef --(~BufRef / recycle())-->
//   pending --(flush(), once per loop iteration: one io_uring_buf_ring_advance)--> kernel ring
// A CQE that carries IORING_CQE_F_BUFFER must always be take()n (even with res 0), or the buffer
// leaks. BufRef is move-only and returns its buffer when destroyed. It never crosses threads.
//
// -ENOBUFS: when every buffer is taken or pending, a multishot recv on the group completes with
// -ENOBUFS and without IORING_CQE_F_MORE: it is no longer armed; the unread bytes stay queued in
// the socket. The owner parks the connection here with park(token). After the batch (when
// BufRefs were released and flush() published them), rearmParked(f) calls f(token) for every
// parked recv once at least `minAvailable` buffers (default: half the ring) are back, and f
// re-submits the multishot recv (after checking the token is still current: the connection may
// have closed meanwhile). Waiting for half rather than one buffer avoids re-arm storms (liburing
// proxy does the same).
//
// Thread and lifetime: loop thread only. Create after the Ring (on its thread), destroy before it;
// every BufRef must be gone before the BufRing. Not movable (BufRefs point at it).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "ztunnel/core/assert.h"
#include "ztunnel/core/result.h"
#include "ztunnel/io/user_data.h"

struct io_uring_buf_ring;

namespace zt::io {

class Ring;
class BufRing;

// A received buffer: bytes [offset, offset+len) of buffer `bid`. Destroying it (or reset())
// recycles the buffer.
class BufRef {
 public:
  BufRef() = default;
  BufRef(BufRef&& o) noexcept
      : ring_(std::exchange(o.ring_, nullptr)), bid_(o.bid_), offset_(o.offset_), len_(o.len_) {}
  BufRef& operator=(BufRef&& o) noexcept {
    if (this != &o) {
      reset();
      ring_ = std::exchange(o.ring_, nullptr);
      bid_ = o.bid_;
      offset_ = o.offset_;
      len_ = o.len_;
    }
    return *this;
  }
  BufRef(const BufRef&) = delete;
  BufRef& operator=(const BufRef&) = delete;
  ~BufRef() { reset(); }

  explicit operator bool() const { return ring_ != nullptr; }
  uint16_t bid() const { return bid_; }
  size_t size() const { return len_; }
  bool empty() const { return len_ == 0; }
  inline std::span<const uint8_t> data() const;

  // Drops `n` bytes from the front (e.g. after a partial send). n <= size().
  void consume(size_t n) {
    ZT_ASSERT(n <= len_);
    offset_ += static_cast<uint32_t>(n);
    len_ -= static_cast<uint32_t>(n);
  }
  // Returns the buffer to its ring now.
  inline void reset();

 private:
  friend class BufRing;
  BufRef(BufRing* ring, uint16_t bid, uint32_t len) : ring_(ring), bid_(bid), len_(len) {}

  BufRing* ring_ = nullptr;
  uint16_t bid_ = 0;
  uint32_t offset_ = 0;
  uint32_t len_ = 0;
};

struct BufRingOptions {
  uint16_t groupId = 0;         // buffer group id (unique per ring)
  uint32_t count = 256;         // number of buffers: a power of two, 1..32768
  uint32_t bufferSize = 16384;  // bytes per buffer
};

class BufRing {
 public:
  // Maps memory, fills the ring with every buffer and registers it on `ring`.
  // Errors: IoErrc::kInvalidArgument (count/size), IoErrc::kRegister (with errno: EINVAL on
  // kernels without buffer rings, EEXIST if the group id is taken), CoreErrc::kSystem (mmap).
  static Result<std::unique_ptr<BufRing>> create(Ring& ring, const BufRingOptions& options);

  BufRing(const BufRing&) = delete;
  BufRing& operator=(const BufRing&) = delete;
  ~BufRing();

  uint16_t groupId() const { return groupId_; }
  uint32_t count() const { return count_; }
  uint32_t bufferSize() const { return bufferSize_; }

  // The first `len` bytes of buffer `bid`.
  std::span<const uint8_t> data(uint16_t bid, size_t len) const {
    ZT_ASSERT(bid < count_ && len <= bufferSize_);
    return {base_ + static_cast<size_t>(bid) * bufferSize_, len};
  }

  // Takes ownership of buffer `bid` reported by a CQE (bufferId(flags)) holding `len` bytes.
  BufRef take(uint16_t bid, uint32_t len) {
    ZT_ASSERT(bid < count_ && len <= bufferSize_);
    ZT_ASSERT(available_ > 0);
    --available_;
    ++inUse_;
    return BufRef(this, bid, len);
  }
  // take() for a CQE: a BufRef if IORING_CQE_F_BUFFER is set (len = max(res, 0)), else nullopt.
  std::optional<BufRef> takeFromCqe(int32_t res, uint32_t cqeFlags);

  // Queues buffer `bid` for return to the kernel (BufRef does this). Visible after flush().
  void recycle(uint16_t bid);
  // Publishes every recycled buffer with one io_uring_buf_ring_advance. Call once per loop
  // iteration. Returns how many were published.
  uint32_t flush();

  // Buffers the kernel can fill now.
  uint32_t available() const { return available_; }
  // Buffers taken by the application and not yet recycled.
  uint32_t inUse() const { return inUse_; }
  // Recycled buffers waiting for flush().
  uint32_t pendingRecycle() const { return pending_; }

  // Remembers a multishot recv that ended with -ENOBUFS (see the header comment).
  void park(Token recv) { parked_.push_back(recv); }
  size_t parked() const { return parked_.size(); }
  // If at least `minAvailable` buffers are available (0: half the ring), calls rearm(Token) for
  // every parked recv and forgets them. Returns how many were handed back.
  template <class F>
  size_t rearmParked(F&& rearm, uint32_t minAvailable = 0) {
    if (parked_.empty()) {
      return 0;
    }
    uint32_t need = minAvailable != 0 ? minAvailable : std::max<uint32_t>(1, count_ / 2);
    if (available_ < need) {
      return 0;
    }
    std::vector<Token> batch;
    batch.swap(parked_);
    for (const Token& t : batch) {
      rearm(t);
    }
    return batch.size();
  }

 private:
  BufRing() = default;

  Ring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t ringBytes_ = 0;
  uint8_t* base_ = nullptr;
  size_t bufferBytes_ = 0;
  uint16_t groupId_ = 0;
  uint32_t count_ = 0;
  uint32_t bufferSize_ = 0;
  int mask_ = 0;
  uint32_t available_ = 0;
  uint32_t inUse_ = 0;
  uint32_t pending_ = 0;
  bool registered_ = false;
  std::vector<Token> parked_;
};

inline std::span<const uint8_t> BufRef::data() const {
  return ring_ == nullptr ? std::span<const uint8_t>()
                          : ring_->data(bid_, offset_ + len_).subspan(offset_);
}

inline void BufRef::reset() {
  if (ring_ != nullptr) {
    std::exchange(ring_, nullptr)->recycle(bid_);
  }
}

}  // namespace zt::io
