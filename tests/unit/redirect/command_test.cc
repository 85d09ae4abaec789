#include "ztunnel/redirect/command.h"

#include <gtest/gtest.h>

#include <string>

namespace zt::redirect {
namespace {

TEST(RunCommand, FeedsStdinAndCapturesStdoutStderrAndStatus) {
  auto r = runCommand({"/bin/sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3"}, "hello\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->exitStatus, 3);
  EXPECT_EQ(r->out, "HELLO\n");
  EXPECT_EQ(r->err, "oops\n");
}

TEST(RunCommand, LargeInputAndOutputDoNotDeadlock) {
  // Larger than a pipe buffer in both directions at once.
  std::string input(1 << 20, 'x');
  auto r = runCommand({"/bin/cat"}, input);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->exitStatus, 0);
  EXPECT_EQ(r->out.size(), input.size());
  EXPECT_EQ(r->out, input);
}

TEST(RunCommand, ChildThatIgnoresStdinStillCompletes) {
  std::string input(1 << 20, 'y');
  auto r = runCommand({"/bin/true"}, input);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->exitStatus, 0);
}

TEST(RunCommand, SignalledChildReportsSignal) {
  auto r = runCommand({"/bin/sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->exitStatus, 128 + 9);
}

TEST(RunCommand, MissingProgramIsSpawnError) {
  auto r = runCommand({"zt-no-such-program-xyz"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(RedirectErrc::kSpawnFailed));
  EXPECT_NE(r.error().message().find("zt-no-such-program-xyz"), std::string::npos);
}

TEST(RunCommand, TimeoutKillsChild) {
  auto r = runCommand({"/bin/sleep", "10"}, {}, std::chrono::milliseconds(100));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(RedirectErrc::kTimedOut));
}

TEST(RunChecked, NonZeroExitIsErrorWithStderr) {
  auto r = runChecked({"/bin/sh", "-c", "echo 'bad rule at line 3' >&2; exit 2"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(RedirectErrc::kCommandFailed));
  EXPECT_EQ(r.error().detail(),
            "/bin/sh -c echo 'bad rule at line 3' >&2; exit 2 exited with status 2: bad rule at "
            "line 3");
}

TEST(RunChecked, ReturnsStdout) {
  auto r = runChecked({"/bin/echo", "ok"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "ok\n");
}

}  // namespace
}  // namespace zt::redirect
