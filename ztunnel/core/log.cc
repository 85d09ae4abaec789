#include "ztunnel/core/log.h"

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <memory>

namespace zt::log {

namespace {

// Lines the access log may queue before the oldest are dropped. spdlog preallocates every slot
// (~400 bytes each), so this is also ~1.6 MiB of resident memory.
constexpr size_t kAccessQueueSize = 4096;

// One JSON object per line: {"time":..., "level":..., "target":..., "message":...}.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto ms = duration_cast<milliseconds>(msg.time.time_since_epoch()).count();
    fmt::format_to(std::back_inserter(dest), R"({{"time_ms":{},"level":"{}","target":")", ms,
                   spdlog::level::to_string_view(msg.level));
    appendEscaped(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    dest.append(std::string_view(R"(","message":")"));
    appendEscaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(std::string_view("\"}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  static void appendEscaped(spdlog::memory_buf_t& dest, std::string_view text) {
    for (char c : text) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            fmt::format_to(std::back_inserter(dest), "\\u{:04x}", static_cast<unsigned>(c));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
};

Result<spdlog::level::level_enum> parseLevel(std::string_view text) {
  if (text == "warning") {
    return spdlog::level::warn;
  }
  if (text == "error") {
    return spdlog::level::err;
  }
  auto level = spdlog::level::from_str(std::string(text));
  // from_str maps unknown names to "off"; only accept "off" when asked for.
  if (level == spdlog::level::off && text != "off") {
    return fail(CoreErrc::kInvalidArgument, "unknown log level '" + std::string(text) +
                                                "' (trace, debug, info, warn, error, off)");
  }
  return level;
}

void applyFormat(spdlog::logger& logger, Format format) {
  if (format == Format::kJson) {
    logger.set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger.set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %n %v", spdlog::pattern_time_type::utc);
  }
}

std::shared_ptr<spdlog::logger> makeLogger(const std::string& name, Format format) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  applyFormat(*logger, format);
  return logger;
}

std::shared_ptr<spdlog::logger>& accessLogger() {
  static std::shared_ptr<spdlog::logger> logger = makeLogger("access", Format::kText);
  return logger;
}

}  // namespace

Result<Levels> parseSpec(std::string_view spec) {
  Levels levels;
  bool accessSet = false;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    std::string_view part =
        spec.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;
    if (part.empty()) {
      continue;
    }
    auto eq = part.find('=');
    if (eq == 0) {
      return fail(CoreErrc::kInvalidArgument, "'" + std::string(part) + "' has no target");
    }
    auto level = parseLevel(eq == std::string_view::npos ? part : part.substr(eq + 1));
    if (!level) {
      return fail(level.error());
    }
    if (eq == std::string_view::npos) {
      levels.main = *level;
    } else if (part.substr(0, eq) == "access") {
      levels.access = *level;
      accessSet = true;
    }
    // Other targets are accepted for RUST_LOG compatibility and have no separate logger here.
  }
  if (!accessSet) {
    levels.access = levels.main;
  }
  return levels;
}

Status init(Format format, std::string_view spec) {
  auto levels = parseSpec(spec);
  if (!levels) {
    return fail(std::move(levels).error());
  }
  const spdlog::level::level_enum mainLevel = levels->main;
  const spdlog::level::level_enum accessLevel = levels->access;
  auto main = makeLogger("ztunnel", format);
  main->set_level(mainLevel);
  spdlog::set_default_logger(main);
  // The access log is written once per connection by the worker threads: hand the lines to a
  // background thread so a worker never waits on the log file. If the queue is full (the sink
  // cannot keep up), the oldest lines are dropped rather than stalling the data path.
  spdlog::init_thread_pool(kAccessQueueSize, 1);
  auto access = std::make_shared<spdlog::async_logger>(
      "access", std::make_shared<spdlog::sinks::stderr_sink_mt>(), spdlog::thread_pool(),
      spdlog::async_overflow_policy::overrun_oldest);
  applyFormat(*access, format);
  access->set_level(accessLevel);
  accessLogger() = std::move(access);
  return ok();
}

void shutdown() {
  if (auto& access = accessLogger()) {
    access->flush();
  }
  spdlog::shutdown();
}

spdlog::logger& access() {
  return *accessLogger();
}

}  // namespace zt::log
