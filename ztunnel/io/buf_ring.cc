#include "ztunnel/io/buf_ring.h"

#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "ztunnel/io/errors.h"
#include "ztunnel/io/ring.h"

namespace zt::io {
namespace {

size_t roundToPages(size_t bytes) {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

void* mapAnonymous(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

Result<std::unique_ptr<BufRing>> BufRing::create(Ring& ring, const BufRingOptions& options) {
  const uint32_t n = options.count;
  if (n == 0 || n > 32768 || (n & (n - 1)) != 0) {
    return fail(IoErrc::kInvalidArgument, "buffer ring count must be a power of two <= 32768");
  }
  if (options.bufferSize == 0) {
    return fail(IoErrc::kInvalidArgument, "buffer ring buffer size must be > 0");
  }
  std::unique_ptr<BufRing> b(new BufRing());
  b->ring_ = &ring;
  b->groupId_ = options.groupId;
  b->count_ = n;
  b->bufferSize_ = options.bufferSize;
  b->mask_ = io_uring_buf_ring_mask(n);

  b->ringBytes_ = roundToPages(sizeof(io_uring_buf) * n);
  void* ringMem = mapAnonymous(b->ringBytes_);
  if (ringMem == nullptr) {
    b->ringBytes_ = 0;
    return fail(systemError("mmap buffer ring descriptors"));
  }
  b->br_ = static_cast<io_uring_buf_ring*>(ringMem);
  b->bufferBytes_ = roundToPages(static_cast<size_t>(n) * options.bufferSize);
  void* bufMem = mapAnonymous(b->bufferBytes_);
  if (bufMem == nullptr) {
    b->bufferBytes_ = 0;
    return fail(systemError("mmap buffer ring buffers"));
  }
  b->base_ = static_cast<uint8_t*>(bufMem);

  io_uring_buf_ring_init(b->br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(b->br_);
  reg.ring_entries = n;
  reg.bgid = options.groupId;
  int rc = io_uring_register_buf_ring(ring.raw(), &reg, 0);
  if (rc != 0) {
    return fail(IoErrc::kRegister,
                "io_uring_register_buf_ring group " + std::to_string(options.groupId), -rc);
  }
  b->registered_ = true;
  for (uint32_t bid = 0; bid < n; ++bid) {
    io_uring_buf_ring_add(b->br_, b->base_ + static_cast<size_t>(bid) * b->bufferSize_,
                          b->bufferSize_, static_cast<unsigned short>(bid), b->mask_,
                          static_cast<int>(bid));
  }
  io_uring_buf_ring_advance(b->br_, static_cast<int>(n));
  b->available_ = n;
  return b;
}

BufRing::~BufRing() {
  ZT_ASSERT(inUse_ == 0);
  if (registered_) {
    // Failure here means the ring is already gone; nothing else to undo.
    (void)io_uring_unregister_buf_ring(ring_->raw(), groupId_);
  }
  if (base_ != nullptr) {
    ::munmap(base_, bufferBytes_);
  }
  if (br_ != nullptr) {
    ::munmap(br_, ringBytes_);
  }
}

std::optional<BufRef> BufRing::takeFromCqe(int32_t res, uint32_t cqeFlags) {
  auto bid = bufferId(cqeFlags);
  if (!bid) {
    return std::nullopt;
  }
  return take(*bid, res > 0 ? static_cast<uint32_t>(res) : 0);
}

void BufRing::recycle(uint16_t bid) {
  ZT_ASSERT(bid < count_ && inUse_ > 0);
  io_uring_buf_ring_add(br_, base_ + static_cast<size_t>(bid) * bufferSize_, bufferSize_, bid,
                        mask_, static_cast<int>(pending_));
  --inUse_;
  ++pending_;
}

uint32_t BufRing::flush() {
  uint32_t n = pending_;
  if (n != 0) {
    io_uring_buf_ring_advance(br_, static_cast<int>(n));
    available_ += n;
    pending_ = 0;
  }
  return n;
}

}  // namespace zt::io
