#include "ztunnel/io/user_data.h"

#include <gtest/gtest.h>

#include <random>

namespace zt::io {
namespace {

TEST(Token, RoundTripsEveryField) {
  const Token cases[] = {
      {Op::kNop, 0, 0, 0},
      {Op::kAccept, 1, 2, 3},
      {Op::kRecv, 0xff, 0xffff, 0xffffffff},
      {Op::kSend, 0x80, 0x8000, 0x80000000},
      {Op::kUserLast, 0xab, 0xcdef, 0x12345678},
      {userOp(0), 7, 65535, 1},
  };
  for (const Token& t : cases) {
    EXPECT_EQ(unpack(pack(t)), t);
  }
}

TEST(Token, FieldsDoNotBleedIntoEachOther) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 10000; ++i) {
    Token t{static_cast<Op>(rng() % 255), static_cast<uint8_t>(rng()), static_cast<uint16_t>(rng()),
            static_cast<uint32_t>(rng())};
    uint64_t v = pack(t);
    EXPECT_EQ(unpack(v), t);
    // Changing one field changes only its bits.
    Token u = t;
    u.gen = static_cast<uint16_t>(t.gen + 1);
    EXPECT_EQ(pack(u) ^ v, (static_cast<uint64_t>(t.gen ^ u.gen) << 32));
  }
}

TEST(Token, LayoutIsOpAuxGenSlot) {
  EXPECT_EQ(pack(Token{static_cast<Op>(0x12), 0x34, 0x5678, 0x9abcdef0}), 0x123456789abcdef0ull);
}

TEST(Token, UserOpsAreDistinctFromLibraryOps) {
  EXPECT_EQ(userOp(0), Op::kUserBase);
  EXPECT_TRUE(isUserOp(userOp(0)));
  EXPECT_TRUE(isUserOp(userOp(190)));
  EXPECT_EQ(userOp(190), Op::kUserLast);
  EXPECT_FALSE(isUserOp(Op::kSplice));
  EXPECT_FALSE(isUserOp(Op::kWake));
  // No valid token is liburing's internal all-ones user_data.
  EXPECT_NE(pack(Token{Op::kUserLast, 0xff, 0xffff, 0xffffffff}), ~0ull);
}

}  // namespace
}  // namespace zt::io
