#include "ztunnel/core/error.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "ztunnel/core/result.h"

namespace zt {
namespace {

Result<int> parsePositive(int v) {
  if (v <= 0) {
    return fail(CoreErrc::kInvalidArgument, "must be positive");
  }
  return v;
}

Status chain(int v) {
  ZT_TRY_STATUS(parsePositive(v));
  return ok();
}

TEST(Error, MessageNamesCategoryCodeDetailAndErrno) {
  Error e(CoreErrc::kSystem, "connect 1.2.3.4:80", ECONNREFUSED);
  EXPECT_TRUE(e.is(CoreErrc::kSystem));
  EXPECT_FALSE(e.is(CoreErrc::kTimedOut));
  EXPECT_EQ(e.message(), "core: system call failed: connect 1.2.3.4:80: Connection refused");
  EXPECT_EQ(e.withContext("outbound").detail(), "outbound: connect 1.2.3.4:80");
}

TEST(Result, PropagatesErrors) {
  EXPECT_TRUE(chain(1));
  auto s = chain(-1);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(CoreErrc::kInvalidArgument));
  EXPECT_EQ(s.error().detail(), "must be positive");
}

}  // namespace
}  // namespace zt
