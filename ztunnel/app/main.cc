// ztunnel: the process entry point. Parses the configuration (environment + flags), then runs
// the chosen subcommand. The only place exceptions are caught: anything thrown at start-up
// becomes a message and a non-zero exit.

#include <cstdio>
#include <exception>
#include <variant>

#include "ztunnel/app/app.h"
#include "ztunnel/app/certs_command.h"
#include "ztunnel/app/config.h"

#ifndef ZT_VERSION
#define ZT_VERSION "0.1.0"
#endif

int main(int argc, char** argv) {
  try {
    auto config = zt::app::loadConfig(argc, argv, zt::app::processEnv());
    if (!config) {
      std::fprintf(stderr, "ztunnel: %s\nRun `ztunnel --help` for the options.\n",
                   config.error().message().c_str());
      return 2;
    }
    return std::visit(
        [&](const auto& command) -> int {
          using T = std::decay_t<decltype(command)>;
          if constexpr (std::is_same_v<T, zt::app::VersionCommand>) {
            std::printf("ztunnel-cpp %s (HBONE: TLS 1.3 + HTTP/2 CONNECT)\n", ZT_VERSION);
            return 0;
          } else if constexpr (std::is_same_v<T, zt::app::HelpCommand>) {
            std::printf("%s", command.text.c_str());
            return 0;
          } else if constexpr (std::is_same_v<T, zt::app::CertsCommand>) {
            return zt::app::runCerts(command.args);
          } else if constexpr (std::is_same_v<T, zt::app::RedirectCommand>) {
            return zt::app::runRedirect(command);
          } else {
            return zt::app::runProxy(*config);
          }
        },
        config->command);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ztunnel: fatal: %s\n", e.what());
    return 1;
  }
}
