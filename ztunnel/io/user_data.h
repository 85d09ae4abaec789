#pragma once

// The 64-bit completion token carried in io_uring's `user_data`.
//
// Every SQE we submit carries a Token; its CQE hands it back and the owner of the ring dispatches
// it with one `switch` on `op`. No heap object and no virtual call per operation (liburing's
// examples/proxy.h packs user_data the same way).
//
//   bit 63 ......... 56 55 ...... 48 47 ........ 32 31 ........................ 0
//       |     op      |     aux     |     gen      |            slot            |
//
// - op:   what the operation was. Values below Op::kUserBase are defined here (the io module's own
//         vocabulary); values kUserBase..kUserLast are free for the caller (the proxy worker) to
//         give its own meaning, e.g. `userOp(3)` = "HBONE upstream recv". The io module never
//         interprets a user op. Op 0xff is reserved: it would let a token equal liburing's internal
//         LIBURING_UDATA_TIMEOUT (all ones).
// - aux:  8 free bits for the caller (a direction, a buffer-size class, a listener kind ...).
// - gen:  the generation of `slot` when the operation was submitted (see SlotMap); a completion
//         whose gen no longer matches the slot is stale and is dropped.
// - slot: index into the owner's SlotMap (connection, listener ...).
//
// Thread: plain values; constexpr.

#include <cstdint>

namespace zt::io {

enum class Op : uint8_t {
  kNop = 0,
  kAccept,  // multishot or single accept on a listener
  kRecv,    // recv into a caller buffer, or multishot recv with provided buffers
  kSend,    // send / sendmsg
  kConnect,
  kLinkTimeout,  // the IORING_OP_LINK_TIMEOUT linked after a connect
  kClose,
  kShutdown,
  kCancel,   // IORING_OP_ASYNC_CANCEL
  kTimeout,  // IORING_OP_TIMEOUT
  kWake,     // reserved for EventLoop: the mailbox eventfd read (handlers never see it)
  kRead,     // plain read (eventfd, pipes)
  kPoll,     // poll add
  kMsgRing,  // IORING_OP_MSG_RING
  kSplice,

  // 15..63: reserved for future io-module ops.

  kUserBase = 64,   // first op value owned by the caller
  kUserLast = 254,  // last op value owned by the caller (0xff is reserved)
};

// The n-th caller-defined op (n < 191). Example: `constexpr Op kUpstreamRecv = userOp(0);`
constexpr Op userOp(uint8_t n) {
  return static_cast<Op>(static_cast<uint8_t>(Op::kUserBase) + n);
}
constexpr bool isUserOp(Op op) {
  return op >= Op::kUserBase && op <= Op::kUserLast;
}

struct Token {
  Op op = Op::kNop;
  uint8_t aux = 0;
  uint16_t gen = 0;
  uint32_t slot = 0;

  friend constexpr bool operator==(const Token&, const Token&) = default;
};

constexpr uint64_t pack(Token t) {
  return (static_cast<uint64_t>(t.op) << 56) | (static_cast<uint64_t>(t.aux) << 48) |
         (static_cast<uint64_t>(t.gen) << 32) | static_cast<uint64_t>(t.slot);
}

constexpr Token unpack(uint64_t v) {
  return Token{static_cast<Op>(v >> 56), static_cast<uint8_t>(v >> 48),
               static_cast<uint16_t>(v >> 32), static_cast<uint32_t>(v)};
}

static_assert(unpack(pack(Token{Op::kUserLast, 0xab, 0xcdef, 0x12345678})) ==
              Token{Op::kUserLast, 0xab, 0xcdef, 0x12345678});
static_assert(sizeof(Token) == 8);

}  // namespace zt::io
