#pragma once

// ByteBuffer: a FIFO of bytes stored in a chain of fixed-size blocks.
//
// Why blocks: bytes already in the buffer never move when more are appended, so a send that is in
// flight (io_uring holds iovecs into the buffer) stays valid while producers keep appending; and
// whole blocks can be spliced between buffers without copying. Blocks of kBlockSize (16 KiB, one
// full TLS record of plaintext) come from a per-thread free list, so steady-state traffic does not
// call malloc.
//
// Thread: a ByteBuffer is used by one thread at a time. Blocks freed on another thread simply join
// that thread's free list.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace zt {

class ByteBuffer {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;

  ByteBuffer() = default;
  ByteBuffer(ByteBuffer&& other) noexcept;
  ByteBuffer& operator=(ByteBuffer&& other) noexcept;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Copies `data` to the end.
  void append(std::span<const uint8_t> data);
  void append(std::string_view data) {
    append(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  }

  // Writable space at the end: at least `minBytes` contiguous bytes (minBytes <= kBlockSize), and
  // possibly more (the rest of the current block). Fill some prefix, then commit() that many bytes.
  // Nothing is visible to readers until committed.
  std::span<uint8_t> reserve(size_t minBytes = 1);
  void commit(size_t n);

  // The first contiguous readable chunk (empty if the buffer is empty).
  std::span<const uint8_t> front() const;
  // Fills up to `maxIov` iovecs describing up to `maxBytes` readable bytes from the front; returns
  // how many iovecs were filled. The memory stays valid until drained (appends don't move it).
  size_t peek(iovec* iov, size_t maxIov, size_t maxBytes = SIZE_MAX) const;
  // Copies up to dst.size() bytes starting `offset` bytes from the front; returns bytes copied.
  size_t copyOut(size_t offset, std::span<uint8_t> dst) const;

  // Removes `n` bytes (n <= size()) from the front.
  void drain(size_t n);
  void clear() { drain(size_); }

  // Moves all bytes of `other` to the end of this buffer, splicing whole blocks (no copy of
  // full blocks; a partly-filled tail block of ours may be topped up by copying small amounts).
  void moveFrom(ByteBuffer& other);

  // For tests and control-plane code.
  std::string toString() const;

  // Number of free blocks cached by this thread's pool (for tests and metrics).
  static size_t pooledBlocksForTest();

 private:
  struct Block;
  Block* newBlock();
  static void releaseBlock(Block* b);

  Block* head_ = nullptr;
  Block* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zt
