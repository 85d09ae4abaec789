#pragma once

// SlotMap<T>: dense, generation-checked slots for the objects that own io_uring operations
// (connections, listeners). A slot index plus its 16-bit generation is what a Token carries.
//
// - insert()/emplace() returns Handle{slot, gen}; the slot is reused LIFO from a free list, so
//   indices stay dense (0..capacity-1) and hot in cache.
// - get(slot, gen) returns nullptr unless the slot is live *and* still has that generation.
// - erase(slot) destroys the object, bumps the generation and frees the slot; every Token minted
//   before erase() is stale from then on.
// - resolve(Token) is get() for a completion: a stale token returns nullptr and is counted in
//   staleCompletions() (export it as a metric: it should stay 0 when the lifetime rule holds).
//
// Lifetime rule (see event_loop.h): the owner erases a slot only after every operation it
// submitted with that slot's tokens has completed; generations are the safety net, not the
// mechanism. Generations are 16 bits: a token only aliases after 65536 reuses of one slot.
//
// Addresses ARE stable: objects live in fixed-size chunks that are never moved or freed before the
// SlotMap itself, so a T* (or memory inside T handed to the kernel, e.g. a recv buffer or a
// msghdr) stays valid until that slot is erased.
//
// Thread: single-threaded (one per worker). Not copyable; movable (chunks move with it).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "ztunnel/core/assert.h"
#include "ztunnel/io/user_data.h"

namespace zt::io {

template <class T, size_t kChunkSize = 64>
class SlotMap {
  static_assert(kChunkSize > 0 && (kChunkSize & (kChunkSize - 1)) == 0,
                "kChunkSize must be a power of two");

 public:
  struct Handle {
    uint32_t slot = 0;
    uint16_t gen = 0;
    friend constexpr bool operator==(const Handle&, const Handle&) = default;
  };

  // A token for an operation on `h` (op and aux chosen by the caller).
  static constexpr Token tokenFor(Handle h, Op op, uint8_t aux = 0) {
    return Token{op, aux, h.gen, h.slot};
  }

  SlotMap() = default;
  SlotMap(SlotMap&& other) noexcept
      : chunks_(std::move(other.chunks_)),
        freeHead_(std::exchange(other.freeHead_, kNone)),
        capacity_(std::exchange(other.capacity_, 0)),
        size_(std::exchange(other.size_, 0)),
        stale_(std::exchange(other.stale_, 0)) {}
  SlotMap& operator=(SlotMap&& other) noexcept {
    if (this != &other) {
      clear();
      chunks_ = std::move(other.chunks_);
      freeHead_ = std::exchange(other.freeHead_, kNone);
      capacity_ = std::exchange(other.capacity_, 0);
      size_ = std::exchange(other.size_, 0);
      stale_ = std::exchange(other.stale_, 0);
    }
    return *this;
  }
  SlotMap(const SlotMap&) = delete;
  SlotMap& operator=(const SlotMap&) = delete;
  ~SlotMap() { clear(); }

  template <class... Args>
  Handle emplace(Args&&... args) {
    uint32_t slot = acquire();
    Entry& e = entry(slot);
    try {
      ::new (static_cast<void*>(e.storage)) T(std::forward<Args>(args)...);
    } catch (...) {
      e.nextFree = freeHead_;
      freeHead_ = slot;
      throw;
    }
    e.live = true;
    ++size_;
    return Handle{slot, e.gen};
  }
  Handle insert(T&& value) { return emplace(std::move(value)); }

  T* get(uint32_t slot, uint16_t gen) {
    if (slot >= capacity_) {
      return nullptr;
    }
    Entry& e = entry(slot);
    return (e.live && e.gen == gen) ? e.object() : nullptr;
  }
  const T* get(uint32_t slot, uint16_t gen) const {
    return const_cast<SlotMap*>(this)->get(slot, gen);
  }
  T* get(Handle h) { return get(h.slot, h.gen); }
  const T* get(Handle h) const { return get(h.slot, h.gen); }

  // get() for a completion's token; a miss is counted as a stale completion.
  T* resolve(const Token& t) {
    T* p = get(t.slot, t.gen);
    if (p == nullptr) [[unlikely]] {
      ++stale_;
    }
    return p;
  }

  bool contains(Handle h) const { return get(h) != nullptr; }

  // The current generation of `slot` (of the live object, or the one the next insert will get).
  uint16_t generation(uint32_t slot) const {
    ZT_ASSERT(slot < capacity_);
    return entry(slot).gen;
  }

  // Destroys the object in `slot`, bumps its generation and frees the slot. False if not live.
  bool erase(uint32_t slot) {
    if (slot >= capacity_) {
      return false;
    }
    Entry& e = entry(slot);
    if (!e.live) {
      return false;
    }
    e.live = false;
    ++e.gen;
    --size_;
    e.object()->~T();
    e.nextFree = freeHead_;
    freeHead_ = slot;
    return true;
  }
  // Erases only if `h` is still current.
  bool erase(Handle h) { return contains(h) && erase(h.slot); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Number of slots ever created (live + free).
  size_t capacity() const { return capacity_; }
  uint64_t staleCompletions() const { return stale_; }

  // Calls f(Handle, T&) for every live object, in slot order. f must not insert or erase.
  template <class F>
  void forEach(F&& f) {
    for (uint32_t s = 0; s < capacity_; ++s) {
      Entry& e = entry(s);
      if (e.live) {
        f(Handle{s, e.gen}, *e.object());
      }
    }
  }

  // Destroys every live object (generations are bumped as by erase()).
  void clear() {
    for (uint32_t s = 0; s < capacity_; ++s) {
      erase(s);
    }
  }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Entry {
    alignas(T) std::byte storage[sizeof(T)];
    uint32_t nextFree = kNone;
    uint16_t gen = 0;
    bool live = false;

    T* object() { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  Entry& entry(uint32_t slot) const { return chunks_[slot / kChunkSize][slot % kChunkSize]; }

  uint32_t acquire() {
    if (freeHead_ != kNone) {
      uint32_t slot = freeHead_;
      freeHead_ = entry(slot).nextFree;
      return slot;
    }
    ZT_RELEASE_ASSERT(capacity_ < kNone - kChunkSize, "SlotMap full");
    if (capacity_ % kChunkSize == 0) {
      chunks_.push_back(std::make_unique<Entry[]>(kChunkSize));
    }
    return capacity_++;
  }

  std::vector<std::unique_ptr<Entry[]>> chunks_;
  uint32_t freeHead_ = kNone;
  uint32_t capacity_ = 0;
  size_t size_ = 0;
  uint64_t stale_ = 0;
};

}  // namespace zt::io
