#pragma once

// Running a helper program (iptables-restore, ip, ...) to completion: posix_spawn with stdin fed
// from a buffer and stdout/stderr captured. Used at start-up and by `ztunnel redirect`, never on
// the data path. Thread-safe (no shared state); blocks the calling thread until the child exits
// or the timeout passes (then the child is killed and reaped).

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/result.h"

namespace zt::redirect {

enum class RedirectErrc {
  kSpawnFailed = 1,  // the program could not be started (not installed, not executable)
  kCommandFailed,    // the program ran and exited non-zero (or was killed)
  kTimedOut,         // the program did not finish in time and was killed
  kInvalidOptions,   // RedirectOptions out of range
  kUnexpectedState,  // the current rules could not be understood
};
const ErrorCategory& errorCategory(RedirectErrc) noexcept;

struct CommandResult {
  // Exit code, or 128 + signal number when the child was killed by a signal.
  int exitStatus = 0;
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH, then /usr/sbin and /sbin) with `input` on its stdin. Returns
// the result whatever the exit status; an error only when it could not be run or timed out.
Result<CommandResult> runCommand(const std::vector<std::string>& argv, std::string_view input = {},
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Same, but a non-zero exit status is an error (kCommandFailed) whose detail names the command,
// the status and the child's stderr. Returns stdout.
Result<std::string> runChecked(const std::vector<std::string>& argv, std::string_view input = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds(30));

// "iptables-restore --noflush" style rendering of argv, for messages.
std::string joinArgv(const std::vector<std::string>& argv);

}  // namespace zt::redirect
