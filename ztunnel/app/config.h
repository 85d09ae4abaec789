#pragma once

// Configuration: the command line and the environment turned into one immutable Config value.
//
//   ztunnel [proxy] [flags]                run the proxy (default)
//   ztunnel version                        print the version
//   ztunnel help [proxy|redirect|certs]    print help (also: --help / -h anywhere)
//   ztunnel certs [ARGS...] [flags]        certificate tooling (arguments passed through)
//   ztunnel redirect install|remove [redirect flags]
//
// Proxy options have an environment variable with ztunnel's name and default (spec §7) and a
// `--flag` twin; a flag wins over the variable. Listener addresses are flags only (ztunnel takes
// them from ProxyConfig). Flags are `--name VALUE` or `--name=VALUE`;
// boolean flags also accept the bare form `--name` (= true). Errors are values naming the variable
// or flag and the bad value, e.g. "HTTP2_FRAME_SIZE=abc: not a byte count".
//
// Value syntax:
//   durations  Go / ztunnel (duration_str) form: "250ms", "10s", "5m", "1h30m", "1.5h"; units ns,
//              us, ms, s, m, h, d; a bare number is seconds. TERMINATION_GRACE_PERIOD_SECONDS is a
//              plain integer number of seconds (Kubernetes' field).
//   booleans   true/false/1/0, case-insensitive.
//   sizes      plain integers, bytes.
//   marks      decimal or 0x-prefixed hex.
//
// Deliberate differences from ztunnel:
//   - XDS_ADDRESS / CA_ADDRESS default to empty (off) outside Kubernetes; istiod's address only
//     when KUBERNETES_SERVICE_HOST is set.
//   - ZTUNNEL_WORKER_THREADS defaults to one worker per CPU (shared-nothing io_uring workers).
//   - PACKET_MARK (1337) applies in dedicated mode too: the capture rules need it.
//   - PROXY_MODE=shared (ztunnel's default) is rejected until in-pod mode exists.
//   - ENABLE_PROXY=false is a warning (admin servers only), not an error; a bad SECRET_TTL is an
//     error rather than silently the default.
//
// loadConfig() reads only the injected environment and the CPU count: it does not touch files or
// sockets (paths are checked by the modules that read them). It is called once, at start-up, on
// the main thread; the resulting Config is an immutable value that may be shared read-only.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ztunnel/core/clock.h"
#include "ztunnel/core/log.h"
#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"
#include "ztunnel/redirect/iptables.h"

namespace zt::app {

enum class ConfigErrc {
  kInvalidValue = 1,  // a value does not parse or is out of range
  kUnknownFlag,       // a flag that does not exist (detail has a hint)
  kMissingValue,      // a flag given without its value
  kUnexpectedArgument,
  kUnknownCommand,
  kMissingRequired,  // e.g. PROXY_WORKLOAD_INFO in dedicated mode
  kUnsupported,      // recognised but not implemented (PROXY_MODE=shared)
  kConflict,         // values that are fine alone but not together
};
const ErrorCategory& errorCategory(ConfigErrc) noexcept;

// Reads one environment variable; nullopt when unset. An empty value counts as set.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup processEnv();  // getenv

enum class ProxyMode { kShared, kDedicated };
// ENABLE_ORIG_SRC: unset/"auto" = use source spoofing if the inbound listener can be made
// transparent; true = require it; false = never.
enum class OrigSrc { kAuto, kEnabled, kDisabled };

// PROXY_WORKLOAD_INFO "ns/name/sa": the single workload a dedicated-mode ztunnel serves.
struct WorkloadInfo {
  std::string ns;
  std::string name;
  std::string serviceAccount;
  friend bool operator==(const WorkloadInfo&, const WorkloadInfo&) = default;
};

// --- Commands ----------------------------------------------------------------------------------

struct ProxyCommand {
  friend bool operator==(const ProxyCommand&, const ProxyCommand&) = default;
};
struct VersionCommand {
  friend bool operator==(const VersionCommand&, const VersionCommand&) = default;
};
// Print `text` (the help asked for) to stdout and exit 0.
struct HelpCommand {
  std::string text;
  friend bool operator==(const HelpCommand&, const HelpCommand&) = default;
};
// `ztunnel certs ARGS...`: positional arguments as given; proxy flags (e.g. --cert-dir) are parsed
// into the Config as for `proxy`, without the proxy-mode checks.
struct CertsCommand {
  std::vector<std::string> args;
  friend bool operator==(const CertsCommand&, const CertsCommand&) = default;
};
// `ztunnel redirect install|remove`: ready for zt::redirect::runRedirect().
struct RedirectCommand {
  redirect::RedirectOptions options;
  friend bool operator==(const RedirectCommand&, const RedirectCommand&) = default;
};
using Command =
    std::variant<ProxyCommand, VersionCommand, HelpCommand, CertsCommand, RedirectCommand>;

// --- Config ------------------------------------------------------------------------------------

struct Config {
  Command command = ProxyCommand{};

  // Mode and identity.
  ProxyMode proxyMode = ProxyMode::kShared;     // PROXY_MODE (only dedicated runs)
  std::optional<WorkloadInfo> workloadInfo;     // PROXY_WORKLOAD_INFO
  std::string trustDomain = "cluster.local";    // TRUST_DOMAIN
  std::string clusterId = "Kubernetes";         // CLUSTER_ID (ISTIO_META_CLUSTER_ID wins)
  std::string clusterDomain = "cluster.local";  // CLUSTER_DOMAIN
  std::string network;                          // NETWORK
  std::string nodeName;                         // NODE_NAME ("" = unset)
  bool enableProxy = true;                      // ENABLE_PROXY

  // Control plane. Empty address = that client is off.
  std::string xdsAddress;  // XDS_ADDRESS; default istiod's when KUBERNETES_SERVICE_HOST is set
  std::string caAddress;   // CA_ADDRESS; same default rule
  std::string xdsRootCa = "./var/run/secrets/istio/root-cert.pem";  // XDS_ROOT_CA (path|SYSTEM|PEM)
  std::string caRootCa = "./var/run/secrets/istio/root-cert.pem";   // CA_ROOT_CA
  std::string altXdsHostname;                                       // ALT_XDS_HOSTNAME
  std::string altCaHostname;                                        // ALT_CA_HOSTNAME
  std::string authToken = "./var/run/secrets/tokens/istio-token";   // AUTH_TOKEN
  Duration secretTtl = std::chrono::hours(24);                      // SECRET_TTL
  std::string localXdsPath;    // LOCAL_XDS_PATH (wins over LOCAL_XDS)
  std::string localXdsInline;  // LOCAL_XDS (YAML text)
  std::string certDir;         // WORKLOAD_CERT_DIR: cert-chain.pem, key.pem, root-cert.pem

  // Data plane.
  unsigned workerThreads = 1;     // resolved from ZTUNNEL_WORKER_THREADS and the CPU count
  std::string workerThreadsSpec;  // as given ("" = default: one per CPU)
  unsigned cpuCount = 1;          // CPUs used for the resolution (ZTUNNEL_CPU_LIMIT or detected)
  uint32_t poolMaxStreamsPerConnection = 100;                   // POOL_MAX_STREAMS_PER_CONNECTION
  Duration poolUnusedReleaseTimeout = std::chrono::minutes(5);  // POOL_UNUSED_RELEASE_TIMEOUT
  uint32_t http2StreamWindowSize = 4u << 20;                    // HTTP2_STREAM_WINDOW_SIZE
  uint32_t http2ConnectionWindowSize = 16u << 20;               // HTTP2_CONNECTION_WINDOW_SIZE
  uint32_t http2FrameSize = 1u << 20;                           // HTTP2_FRAME_SIZE
  bool enableSocks5 = false;                                    // UNSTABLE_ENABLE_SOCKS5
  bool tls12Enabled = false;                                    // TLS12_ENABLED
  bool keepaliveEnabled = true;                                 // KEEPALIVE_ENABLED
  Duration keepaliveTime = std::chrono::seconds(180);           // KEEPALIVE_TIME
  Duration keepaliveInterval = std::chrono::seconds(180);       // KEEPALIVE_INTERVAL
  uint32_t keepaliveRetries = 9;                                // KEEPALIVE_RETRIES
  bool userTimeoutEnabled = false;                              // USER_TIMEOUT_ENABLED
  // Drain deadline (§1.7): CONNECTION_TERMINATION_DEADLINE if set; else from
  // TERMINATION_GRACE_PERIOD_SECONDS g: g-5 s if g > 10, else g-1 s, at least 1 s; else 5 s.
  Duration selfTerminationDeadline = std::chrono::seconds(5);
  uint32_t packetMark = 1337;              // PACKET_MARK: SO_MARK on ztunnel's sockets (0x539)
  OrigSrc enableOrigSrc = OrigSrc::kAuto;  // ENABLE_ORIG_SRC
  bool ipv6Enabled = true;                 // IPV6_ENABLED

  // Listeners (flags only, like ztunnel's ProxyConfig ports). Wildcards are [::] unless IPv6 is
  // disabled, then 0.0.0.0.
  SocketAddress outboundAddr{IpAddress::v6(in6addr_any), 15001};  // --outbound-addr
  SocketAddress inboundAddr{IpAddress::v6(in6addr_any), 15008};   // --inbound-addr (HBONE)
  SocketAddress inboundPlaintextAddr{IpAddress::v6(in6addr_any),
                                     15006};                       // --inbound-plaintext-addr
  SocketAddress socks5Addr{IpAddress::loopbackV4(), 15080};        // --socks5-addr
  SocketAddress adminAddr{IpAddress::loopbackV4(), 15000};         // --admin-addr
  SocketAddress statsAddr{IpAddress::v6(in6addr_any), 15020};      // --stats-addr
  SocketAddress readinessAddr{IpAddress::v6(in6addr_any), 15021};  // --readiness-addr

  // Logging.
  log::Format logFormat = log::Format::kText;  // LOG_FORMAT
  std::string logSpec = "info";                // RUST_LOG

  // Things worth a warning line once logging is up (e.g. a small connection window).
  std::vector<std::string> warnings;

  friend bool operator==(const Config&, const Config&) = default;
};

// Parses argv (argv[0] is the program name) and the environment. `cpuCount` is the number of CPUs
// worker threads are resolved against; 0 = detect (sched_getaffinity). ZTUNNEL_CPU_LIMIT, when
// set, overrides it. For `version` and `help` the environment is not read.
Result<Config> loadConfig(int argc, const char* const* argv, const EnvLookup& env,
                          unsigned cpuCount = 0);
Result<Config> loadConfig(const std::vector<std::string>& args, const EnvLookup& env,
                          unsigned cpuCount = 0);  // args without the program name

// ZTUNNEL_WORKER_THREADS resolution: "" = one per CPU; "N" (N > 0) = N; "0" = all CPUs; "N%" =
// ceil(N% of the CPUs), at least 1, 0 < N <= 100.
// The proxy options alone (flags without a command word), without the checks that only a running
// proxy needs (PROXY_MODE=dedicated and its PROXY_WORKLOAD_INFO). For tests and tools.
Result<Config> loadProxyOptions(const std::vector<std::string>& args, const EnvLookup& env,
                                unsigned cpuCount = 0);

Result<unsigned> resolveWorkerThreads(std::string_view spec, unsigned cpuCount);

// Value parsers used for the options (exposed for tests and for other modules' env knobs).
// Errors carry only the reason ("not a duration"); loadConfig prefixes "NAME=value: ".
Result<Duration> parseDuration(std::string_view text);
Result<bool> parseBool(std::string_view text);
Result<uint64_t> parseByteCount(std::string_view text);

// One option as `--help` documents it.
struct OptionInfo {
  std::string_view flag;          // "--http2-frame-size"
  std::string_view env;           // "HTTP2_FRAME_SIZE", or "" (flag only)
  std::string_view defaultValue;  // as shown in help
  std::string_view meaning;
  std::string_view example;  // a valid non-default value (tests use it)
  std::string_view metavar;  // "BYTES", "DURATION", ...; "" for booleans
  bool isBool = false;
};
const std::vector<OptionInfo>& proxyOptions();
const std::vector<OptionInfo>& redirectOptions();

std::string helpText();          // everything: commands, proxy options, redirect options
std::string redirectHelpText();  // `ztunnel redirect --help`
std::string certsHelpText();

std::string_view toString(ProxyMode mode);
std::string_view toString(OrigSrc value);

}  // namespace zt::app
