#pragma once

// Error codes of the state module.

#include "ztunnel/core/error.h"

namespace zt::state {

enum class StateErrc {
  kInvalid = 1,        // a value that cannot be stored (empty uid, bad key, ...)
  kDuplicate,          // two objects with one primary key in one snapshot
  kNoHealthyUpstream,  // a service has no usable endpoint for the port
  kUnknownWaypoint,    // a GatewayAddress that resolves to nothing
};
const ErrorCategory& errorCategory(StateErrc) noexcept;

}  // namespace zt::state
