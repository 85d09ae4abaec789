#pragma once

// Start-up probe of io_uring: can we create a ring here, and does the kernel have every opcode
// and feature the data path relies on? Run once on the main thread before starting workers; a
// failure is fatal with an actionable message (what failed, why, and which setting to check).
//
// Opcodes are checked with IORING_REGISTER_PROBE. Multishot accept, multishot recv and buffer
// rings cannot be detected from the opcode table, so they are exercised for real on an AF_UNIX
// socket pair (no network, works in any namespace): a provided-buffer ring is registered, a
// multishot recv receives one byte into it, a multishot accept accepts one connection.

#include <cstdint>
#include <string>

#include "ztunnel/core/result.h"

namespace zt::io {

struct RingFeatures {
  // Setup flags the kernel accepted (IORING_SETUP_*) with our preferred options.
  unsigned setupFlags = 0;
  // IORING_FEAT_* reported at setup.
  unsigned features = 0;
  bool singleIssuer = false;
  bool deferTaskrun = false;
  bool coopTaskrun = false;
  bool extArg = false;  // IORING_FEAT_EXT_ARG: waits with a timeout need no timeout SQE
  bool nodrop = false;  // IORING_FEAT_NODROP: CQ overflow is buffered, not lost

  // Opcodes (IORING_REGISTER_PROBE).
  bool opAccept = false;
  bool opRecv = false;
  bool opSend = false;
  bool opSendmsg = false;
  bool opConnect = false;
  bool opShutdown = false;
  bool opClose = false;
  bool opAsyncCancel = false;
  bool opTimeout = false;
  bool opLinkTimeout = false;
  bool opRead = false;
  bool opMsgRing = false;

  // Exercised for real.
  bool bufRing = false;          // io_uring_register_buf_ring (5.19)
  bool multishotRecv = false;    // IORING_RECV_MULTISHOT (6.0)
  bool multishotAccept = false;  // IORING_ACCEPT_MULTISHOT (5.19)

  std::string kernelRelease;  // uname -r

  // One line, for the start-up log.
  std::string describe() const;
};

// Creates a throw-away ring and checks everything above. Errors:
// - IoErrc::kUnavailable when io_uring_setup itself fails (ENOSYS, EPERM, ENOMEM): the message
//   names kernel.io_uring_disabled (with its current value), seccomp profiles, RLIMIT_MEMLOCK.
// - IoErrc::kFeatureMissing naming every missing opcode/feature and the kernel version needed.
Result<RingFeatures> probeIoUring();

// The error for a failed io_uring_setup with errno `err` (shared with Ring::create).
Error setupFailure(int err);

}  // namespace zt::io
