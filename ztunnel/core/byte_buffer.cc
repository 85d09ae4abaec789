#include "ztunnel/core/byte_buffer.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "ztunnel/core/assert.h"

namespace zt {

struct ByteBuffer::Block {
  Block* next = nullptr;
  uint32_t begin = 0;  // first readable byte
  uint32_t end = 0;    // one past the last committed byte
  alignas(64) uint8_t data[kBlockSize];

  uint32_t readable() const { return end - begin; }
  uint32_t writable() const { return kBlockSize - end; }
};

namespace {

// Per-thread cache of free blocks. Bounded so a burst does not pin memory forever
// (256 blocks = 4 MiB per thread).
constexpr size_t kMaxPooledBlocks = 256;

struct BlockPool {
  void* freeList = nullptr;  // singly linked through the first word
  size_t count = 0;
  ~BlockPool() {
    while (freeList != nullptr) {
      void* next = *static_cast<void**>(freeList);
      ::operator delete(freeList, std::align_val_t(64));
      freeList = next;
    }
  }
};

thread_local BlockPool tlsPool;

}  // namespace

ByteBuffer::Block* ByteBuffer::newBlock() {
  void* mem;
  if (tlsPool.freeList != nullptr) {
    mem = tlsPool.freeList;
    tlsPool.freeList = *static_cast<void**>(mem);
    --tlsPool.count;
  } else {
    mem = ::operator new(sizeof(Block), std::align_val_t(64));
  }
  // Default-initialise (no "()"): value-initialisation would zero the 16 KiB payload every time.
  return new (mem) Block;
}

void ByteBuffer::releaseBlock(Block* b) {
  b->~Block();
  if (tlsPool.count < kMaxPooledBlocks) {
    *reinterpret_cast<void**>(b) = tlsPool.freeList;
    tlsPool.freeList = b;
    ++tlsPool.count;
  } else {
    ::operator delete(b, std::align_val_t(64));
  }
}

size_t ByteBuffer::pooledBlocksForTest() { return tlsPool.count; }

ByteBuffer::ByteBuffer(ByteBuffer&& other) noexcept
    : head_(std::exchange(other.head_, nullptr)),
      tail_(std::exchange(other.tail_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

ByteBuffer& ByteBuffer::operator=(ByteBuffer&& other) noexcept {
  if (this != &other) {
    clear();
    if (head_ != nullptr) {
      releaseBlock(head_);
    }
    head_ = std::exchange(other.head_, nullptr);
    tail_ = std::exchange(other.tail_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

ByteBuffer::~ByteBuffer() {
  while (head_ != nullptr) {
    Block* next = head_->next;
    releaseBlock(head_);
    head_ = next;
  }
}

void ByteBuffer::append(std::span<const uint8_t> data) {
  while (!data.empty()) {
    auto space = reserve(1);
    size_t n = std::min(space.size(), data.size());
    std::memcpy(space.data(), data.data(), n);
    commit(n);
    data = data.subspan(n);
  }
}

std::span<uint8_t> ByteBuffer::reserve(size_t minBytes) {
  ZT_ASSERT(minBytes <= kBlockSize);
  if (tail_ == nullptr || tail_->writable() < minBytes) {
    // An empty tail block can be rewound instead of chaining a new one.
    if (tail_ != nullptr && tail_->readable() == 0 && head_ == tail_) {
      tail_->begin = tail_->end = 0;
    } else {
      Block* b = newBlock();
      if (tail_ == nullptr) {
        head_ = tail_ = b;
      } else {
        tail_->next = b;
        tail_ = b;
      }
    }
  }
  return {tail_->data + tail_->end, tail_->writable()};
}

void ByteBuffer::commit(size_t n) {
  ZT_ASSERT(tail_ != nullptr && n <= tail_->writable());
  tail_->end += static_cast<uint32_t>(n);
  size_ += n;
}

std::span<const uint8_t> ByteBuffer::front() const {
  for (Block* b = head_; b != nullptr; b = b->next) {
    if (b->readable() > 0) {
      return {b->data + b->begin, b->readable()};
    }
  }
  return {};
}

size_t ByteBuffer::peek(iovec* iov, size_t maxIov, size_t maxBytes) const {
  size_t count = 0;
  for (Block* b = head_; b != nullptr && count < maxIov && maxBytes > 0; b = b->next) {
    size_t n = std::min<size_t>(b->readable(), maxBytes);
    if (n == 0) {
      continue;
    }
    iov[count].iov_base = b->data + b->begin;
    iov[count].iov_len = n;
    ++count;
    maxBytes -= n;
  }
  return count;
}

size_t ByteBuffer::copyOut(size_t offset, std::span<uint8_t> dst) const {
  size_t copied = 0;
  for (Block* b = head_; b != nullptr && copied < dst.size(); b = b->next) {
    size_t avail = b->readable();
    if (offset >= avail) {
      offset -= avail;
      continue;
    }
    size_t n = std::min(avail - offset, dst.size() - copied);
    std::memcpy(dst.data() + copied, b->data + b->begin + offset, n);
    copied += n;
    offset = 0;
  }
  return copied;
}

void ByteBuffer::drain(size_t n) {
  ZT_RELEASE_ASSERT(n <= size_, "ByteBuffer::drain past the end");
  size_ -= n;
  while (n > 0) {
    size_t take = std::min<size_t>(head_->readable(), n);
    head_->begin += static_cast<uint32_t>(take);
    n -= take;
    if (head_->readable() == 0) {
      if (head_->next == nullptr) {
        // Keep the last block for reuse by the next append.
        head_->begin = head_->end = 0;
        break;
      }
      Block* next = head_->next;
      releaseBlock(head_);
      head_ = next;
    }
  }
}

void ByteBuffer::moveFrom(ByteBuffer& other) {
  if (other.size_ == 0) {
    return;
  }
  // Small amounts: copy into our tail instead of chaining a mostly-empty block.
  if (tail_ != nullptr && other.size_ <= tail_->writable()) {
    uint8_t* dst = tail_->data + tail_->end;
    size_t n = other.copyOut(0, {dst, other.size_});
    commit(n);
    other.clear();
    return;
  }
  // Splice: drop our empty trailing block if any, then link other's chain.
  if (tail_ != nullptr && size_ == 0) {
    releaseBlock(head_);
    head_ = tail_ = nullptr;
  }
  if (tail_ == nullptr) {
    head_ = other.head_;
  } else {
    tail_->next = other.head_;
  }
  tail_ = other.tail_;
  size_ += other.size_;
  other.head_ = other.tail_ = nullptr;
  other.size_ = 0;
}

std::string ByteBuffer::toString() const {
  std::string out(size_, '\0');
  copyOut(0, {reinterpret_cast<uint8_t*>(out.data()), out.size()});
  return out;
}

}  // namespace zt
