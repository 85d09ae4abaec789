#pragma once

// Error codes of the io module (io_uring engine and socket factory).

#include "ztunnel/core/error.h"

namespace zt::io {

enum class IoErrc {
  kUnavailable = 1,   // io_uring cannot be used at all (ENOSYS, EPERM: sysctl or seccomp)
  kFeatureMissing,    // the kernel lacks an io_uring opcode or feature we rely on
  kRingSetup,         // io_uring_queue_init_params failed for another reason
  kSubmit,            // io_uring_enter (submit / wait) failed
  kRegister,          // io_uring_register (buffer ring) failed
  kSocket,            // socket(), setsockopt(), bind(), listen(), getsockname() ...
  kPermissionDenied,  // a privileged socket option (IP_TRANSPARENT, SO_MARK) was refused
  kInvalidArgument,   // a caller-supplied option is out of range
  kEventFd,           // eventfd() / write() for the cross-thread mailbox
};

const ErrorCategory& errorCategory(IoErrc) noexcept;

}  // namespace zt::io
