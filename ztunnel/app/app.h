#pragma once

// The process: turns a Config into running workers and the control loop, and runs the
// subcommands. Exceptions never escape these functions' callers' expectations: each returns the
// process exit code and prints its own errors.

#include "ztunnel/app/config.h"

namespace zt::app {

// `ztunnel proxy`: runs until SIGTERM/SIGINT, then drains (CONNECTION_TERMINATION_DEADLINE).
int runProxy(const Config& config);

// `ztunnel redirect install|remove`.
int runRedirect(const RedirectCommand& command);

}  // namespace zt::app
