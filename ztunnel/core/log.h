#pragma once

// Logging: spdlog behind a few macros so call sites stay short and formatting is skipped when the
// level is off. Two loggers: the default one (stderr, "ztunnel") and "access", the per-connection
// access log, which is off the hot path: info-level per-connection lines go only to "access".

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "ztunnel/core/result.h"

namespace zt::log {

enum class Format { kText, kJson };

struct Levels {
  spdlog::level::level_enum main = spdlog::level::info;
  spdlog::level::level_enum access = spdlog::level::info;  // the main level unless given
};
// Parses RUST_LOG's simple form: "<level>[,<target>=<level>]...". Levels: trace, debug, info,
// warn (warning), error, off. Only the "access" target has its own logger; others are accepted.
Result<Levels> parseSpec(std::string_view spec);

// Configures both loggers. `spec` follows RUST_LOG's simple form: "<level>[,access=<level>]...",
// e.g. "info" or "info,access=debug". Returns an error naming the bad part. Call once at start-up.
Status init(Format format, std::string_view spec);

// The access logger ("connection complete" lines). Asynchronous once init() ran: lines are
// formatted on the calling thread and written by a background thread.
spdlog::logger& access();

// Flushes the access log and stops its thread. Call once before the process exits.
void shutdown();

}  // namespace zt::log

#define ZT_LOG_(lvl, ...) spdlog::default_logger_raw()->log(spdlog::level::lvl, __VA_ARGS__)
#define ZT_TRACE(...) ZT_LOG_(trace, __VA_ARGS__)
#define ZT_DEBUG(...) ZT_LOG_(debug, __VA_ARGS__)
#define ZT_INFO(...) ZT_LOG_(info, __VA_ARGS__)
#define ZT_WARN(...) ZT_LOG_(warn, __VA_ARGS__)
#define ZT_ERROR(...) ZT_LOG_(err, __VA_ARGS__)
