#include "ztunnel/app/config.h"

#include "ztunnel/app/certs_command.h"

#include <sched.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace zt::app {

namespace {

std::string_view describeConfig(int code) noexcept {
  switch (static_cast<ConfigErrc>(code)) {
    case ConfigErrc::kInvalidValue:
      return "invalid value";
    case ConfigErrc::kUnknownFlag:
      return "unknown flag";
    case ConfigErrc::kMissingValue:
      return "missing value";
    case ConfigErrc::kUnexpectedArgument:
      return "unexpected argument";
    case ConfigErrc::kUnknownCommand:
      return "unknown command";
    case ConfigErrc::kMissingRequired:
      return "missing required setting";
    case ConfigErrc::kUnsupported:
      return "not supported";
    case ConfigErrc::kConflict:
      return "conflicting settings";
  }
  return "unknown config error";
}

tl::unexpected<Error> invalid(std::string reason) {
  return fail(ConfigErrc::kInvalidValue, std::move(reason));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Unsigned decimal (or 0x hex when allowHex) without sign or spaces; nullopt on overflow/garbage.
std::optional<uint64_t> parseUnsigned(std::string_view s, bool allowHex = false) {
  int base = 10;
  if (allowHex && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  if (s.empty()) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    if (v > (std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(d)) / base) {
      return std::nullopt;
    }
    v = v * base + static_cast<uint64_t>(d);
  }
  return v;
}

// "12" or "12.5" (no sign, no exponent).
std::optional<double> parseDecimal(std::string_view s) {
  size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if ((whole.empty() && frac.empty()) || (!whole.empty() && !allDigits(whole)) ||
      (dot != std::string_view::npos && !frac.empty() && !allDigits(frac)) ||
      (dot != std::string_view::npos && frac.empty() && whole.empty())) {
    return std::nullopt;
  }
  return std::strtod(std::string(s).c_str(), nullptr);
}

bool isDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63) {
    return false;
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-'; });
}

bool isDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  size_t pos = 0;
  while (true) {
    size_t dot = s.find('.', pos);
    if (!isDns1123Label(s.substr(pos, dot == std::string_view::npos ? dot : dot - pos))) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    pos = dot + 1;
  }
}

Result<WorkloadInfo> parseWorkloadInfo(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (true) {
    size_t slash = s.find('/', pos);
    parts.push_back(s.substr(pos, slash == std::string_view::npos ? slash : slash - pos));
    if (slash == std::string_view::npos) {
      break;
    }
    pos = slash + 1;
  }
  if (parts.size() != 3) {
    return invalid("expected ns/name/sa");
  }
  if (!isDns1123Label(parts[0])) {
    return invalid(fmt::format("namespace '{}' is not a DNS-1123 label", parts[0]));
  }
  if (!isDns1123Subdomain(parts[1])) {
    return invalid(fmt::format("name '{}' is not a DNS-1123 subdomain", parts[1]));
  }
  if (!isDns1123Subdomain(parts[2])) {
    return invalid(fmt::format("service account '{}' is not a DNS-1123 subdomain", parts[2]));
  }
  return WorkloadInfo{std::string(parts[0]), std::string(parts[1]), std::string(parts[2])};
}

// Adds https:// when no scheme is given (as ztunnel does) and checks what remains.
Result<std::string> parseControlPlaneAddress(std::string_view s) {
  if (s.empty()) {
    return std::string();  // explicitly off
  }
  std::string url(s);
  size_t sep = url.find("://");
  if (sep == std::string::npos) {
    url = "https://" + url;
    sep = 5;
  }
  std::string scheme = lower(std::string_view(url).substr(0, sep));
  if (scheme != "https" && scheme != "http") {
    return invalid("scheme must be https or http");
  }
  std::string_view rest = std::string_view(url).substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.empty() || authority.front() == ':') {
    return invalid("no host");
  }
  if (authority.find_first_of(" \t") != std::string_view::npos) {
    return invalid("space in address");
  }
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    auto port = parseUnsigned(authority.substr(colon + 1));
    if (!port || *port == 0 || *port > 65535) {
      return invalid("bad port");
    }
  }
  return url;
}

Result<SocketAddress> parseListenAddress(std::string_view s) {
  auto addr = SocketAddress::parse(s);
  if (!addr) {
    return invalid("not an address:port (\"0.0.0.0:15001\", \"[::]:15001\")");
  }
  return *addr;
}

Result<uint32_t> parseU32(std::string_view s, uint64_t min, uint64_t max, std::string_view what,
                          bool allowHex = false) {
  auto v = parseUnsigned(s, allowHex);
  if (!v) {
    return invalid(fmt::format("not {}", what));
  }
  if (*v < min || *v > max) {
    return invalid(fmt::format("must be between {} and {}", min, max));
  }
  return static_cast<uint32_t>(*v);
}

Result<uint32_t> parseSize(std::string_view s, uint64_t min, uint64_t max) {
  auto v = parseByteCount(s);
  if (!v) {
    return fail(std::move(v).error());
  }
  if (*v < min || *v > max) {
    return invalid(fmt::format("must be between {} and {} bytes", min, max));
  }
  return static_cast<uint32_t>(*v);
}

Result<Duration> parseDurationIn(std::string_view s, Duration min, Duration max,
                                 std::string_view range) {
  auto d = parseDuration(s);
  if (!d) {
    return d;
  }
  if (*d < min || *d > max) {
    return invalid(fmt::format("must be {}", range));
  }
  return d;
}

// ZTUNNEL_CPU_LIMIT: a Kubernetes CPU quantity ("2", "1.5", "500m"), rounded up to whole CPUs.
Result<unsigned> parseCpuLimit(std::string_view s) {
  double cpus;
  if (!s.empty() && s.back() == 'm') {
    auto milli = parseUnsigned(s.substr(0, s.size() - 1));
    if (!milli) {
      return invalid("not a CPU quantity (\"2\", \"1.5\", \"500m\")");
    }
    cpus = static_cast<double>(*milli) / 1000.0;
  } else {
    auto d = parseDecimal(s);
    if (!d) {
      return invalid("not a CPU quantity (\"2\", \"1.5\", \"500m\")");
    }
    cpus = *d;
  }
  if (cpus <= 0 || cpus > 4096) {
    return invalid("must be more than 0 and at most 4096 CPUs");
  }
  return static_cast<unsigned>(std::ceil(cpus));
}

unsigned detectCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) {
      return static_cast<unsigned>(n);
    }
  }
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

// Parsing state beyond the Config itself: what was set explicitly, and raw inputs that are only
// combined once every source has been applied.
struct Builder {
  Config cfg;
  redirect::RedirectOptions redirect;
  bool proxyModeExplicit = false;
  bool xdsExplicit = false;
  bool caExplicit = false;
  std::optional<unsigned> cpuLimit;
  std::optional<Duration> terminationDeadline;
  std::optional<uint64_t> gracePeriodSeconds;
  std::optional<SocketAddress> outbound, inbound, inboundPlaintext, stats, readiness;
};

using Apply = Status (*)(Builder&, std::string_view);

struct Option {
  OptionInfo info;
  std::string_view envOverride;  // a second variable that wins over info.env when both are set
  Apply apply;
};

template <class T>
Status assign(T& field, Result<T> value) {
  if (!value) {
    return fail(std::move(value).error());
  }
  field = std::move(*value);
  return ok();
}

Status setString(std::string& field, std::string_view v) {
  field = std::string(v);
  return ok();
}

Status setBool(bool& field, std::string_view v) {
  auto b = parseBool(v);
  if (!b) {
    return fail(std::move(b).error());
  }
  field = *b;
  return ok();
}

Status setDuration(Duration& field, Result<Duration> d) {
  if (!d) {
    return fail(std::move(d).error());
  }
  field = *d;
  return ok();
}

Status setU32(uint32_t& field, Result<uint32_t> v) {
  if (!v) {
    return fail(std::move(v).error());
  }
  field = *v;
  return ok();
}

Status setAddr(std::optional<SocketAddress>& field, std::string_view v) {
  auto a = parseListenAddress(v);
  if (!a) {
    return fail(std::move(a).error());
  }
  field = *a;
  return ok();
}

Status setAddr(SocketAddress& field, std::string_view v) {
  auto a = parseListenAddress(v);
  if (!a) {
    return fail(std::move(a).error());
  }
  field = *a;
  return ok();
}

Status setPort(uint16_t& field, std::string_view v) {
  auto p = parseU32(v, 1, 65535, "a port number");
  if (!p) {
    return fail(std::move(p).error());
  }
  field = static_cast<uint16_t>(*p);
  return ok();
}

constexpr std::string_view kIstiodAddress = "https://istiod.istio-system.svc:15012";

// The proxy options, in help order. Every entry: flag, env, default as shown, meaning, example (a
// valid non-default value), metavar, isBool; envOverride; apply.
const std::vector<Option>& proxyTable() {
  static const std::vector<Option> table = {
      {{"--proxy-mode", "PROXY_MODE", "shared",
        "dedicated | shared. dedicated: serve one workload (PROXY_WORKLOAD_INFO) in this network "
        "namespace. shared (in-pod, one ztunnel per node) is not supported yet and is rejected.",
        "dedicated", "MODE"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         if (v == "dedicated") {
           b.cfg.proxyMode = ProxyMode::kDedicated;
         } else if (v == "shared") {
           b.cfg.proxyMode = ProxyMode::kShared;
         } else {
           return invalid("expected dedicated or shared");
         }
         b.proxyModeExplicit = true;
         return ok();
       }},
      {{"--workload-info", "PROXY_WORKLOAD_INFO", "(unset)",
        "ns/name/sa of the workload this dedicated-mode ztunnel serves; required in dedicated "
        "mode.",
        "default/client/sleep", "NS/NAME/SA"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         auto w = parseWorkloadInfo(v);
         if (!w) {
           return fail(std::move(w).error());
         }
         b.cfg.workloadInfo = *w;
         return ok();
       }},
      {{"--trust-domain", "TRUST_DOMAIN", "cluster.local",
        "SPIFFE trust domain of this workload's identity.", "example.org", "DOMAIN"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         bool okChars = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '_';
         });
         if (!okChars) {
           return invalid("not a SPIFFE trust domain (lowercase letters, digits, '.', '-', '_')");
         }
         return setString(b.cfg.trustDomain, v);
       }},
      {{"--cluster-id", "CLUSTER_ID", "Kubernetes",
        "Cluster id sent to istiod and the CA (clusterid header). ISTIO_META_CLUSTER_ID, when "
        "set, wins over CLUSTER_ID.",
        "cluster2", "ID"},
       "ISTIO_META_CLUSTER_ID",
       [](Builder& b, std::string_view v) -> Status {
         if (v.empty()) {
           return invalid("must not be empty");
         }
         return setString(b.cfg.clusterId, v);
       }},
      {{"--cluster-domain", "CLUSTER_DOMAIN", "cluster.local",
        "Kubernetes DNS domain (for the DNS proxy; accepted, not used by this build).",
        "corp.local", "DOMAIN"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         if (!isDns1123Subdomain(v)) {
           return invalid("not a DNS domain");
         }
         return setString(b.cfg.clusterDomain, v);
       }},
      {{"--network", "NETWORK", "(empty)", "Network of this node (multi-network meshes).",
        "network1", "NAME"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.network, v); }},
      {{"--node-name", "NODE_NAME", "(unset)",
        "Name of the node this ztunnel runs on (xDS node metadata; accepted, not used by this "
        "build).",
        "node-a", "NAME"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.nodeName, v); }},
      {{"--enable-proxy", "ENABLE_PROXY", "true",
        "Run the proxy listeners (outbound, inbound, inbound plaintext). This build has no "
        "admin, metrics or readiness server to run instead, so false makes start-up fail.",
        "false", "", true},
       "",
       [](Builder& b, std::string_view v) -> Status { return setBool(b.cfg.enableProxy, v); }},
      {{"--xds-address", "XDS_ADDRESS",
        "(empty = no xDS; https://istiod.istio-system.svc:15012 when KUBERNETES_SERVICE_HOST is "
        "set)",
        "xDS server (istiod) URL; https:// is added when no scheme is given. Empty disables xDS "
        "(use LOCAL_XDS_PATH). This build has no xDS client yet: a non-empty value makes "
        "start-up fail with that message.",
        "https://istiod.example:15012", "URL"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         b.xdsExplicit = true;
         return assign<std::string>(b.cfg.xdsAddress, parseControlPlaneAddress(v));
       }},
      {{"--ca-address", "CA_ADDRESS",
        "(empty = no CA; https://istiod.istio-system.svc:15012 when KUBERNETES_SERVICE_HOST is "
        "set)",
        "Istio CA (IstioCertificateService) URL. Empty disables the CA client (use "
        "WORKLOAD_CERT_DIR). This build has no CA client yet: without WORKLOAD_CERT_DIR, start-up "
        "fails with that message.",
        "https://istiod.example:15012", "URL"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         b.caExplicit = true;
         return assign<std::string>(b.cfg.caAddress, parseControlPlaneAddress(v));
       }},
      {{"--xds-root-ca", "XDS_ROOT_CA", "./var/run/secrets/istio/root-cert.pem",
        "Root certificate for the xDS server: a file path, SYSTEM, or inline PEM (xDS client; not "
        "in this build yet).",
        "SYSTEM", "PATH"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.xdsRootCa, v); }},
      {{"--ca-root-ca", "CA_ROOT_CA", "./var/run/secrets/istio/root-cert.pem",
        "Root certificate for the CA: a file path, SYSTEM, or inline PEM (CA client; not in this "
        "build yet).",
        "SYSTEM", "PATH"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.caRootCa, v); }},
      {{"--alt-xds-hostname", "ALT_XDS_HOSTNAME", "(unset)",
        "Alternate server name accepted in the xDS server's certificate (xDS client; not in this "
        "build yet).",
        "istiod.alt", "NAME"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.altXdsHostname, v); }},
      {{"--alt-ca-hostname", "ALT_CA_HOSTNAME", "(unset)",
        "Alternate server name accepted in the CA's certificate (CA client; not in this build "
        "yet).",
        "ca.alt", "NAME"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.altCaHostname, v); }},
      {{"--auth-token", "AUTH_TOKEN", "./var/run/secrets/tokens/istio-token",
        "Kubernetes service-account token for istiod: a file path or the token itself (xDS/CA "
        "clients; not in this build yet).",
        "/tmp/token", "PATH"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.authToken, v); }},
      {{"--secret-ttl", "SECRET_TTL", "24h",
        "Validity requested for workload certificates (CA client; not in this build yet).", "12h",
        "DURATION"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setDuration(b.cfg.secretTtl,
                            parseDurationIn(v, std::chrono::seconds(1),
                                            std::chrono::hours(24 * 3650), "between 1s and 3650d"));
       }},
      {{"--local-xds-path", "LOCAL_XDS_PATH", "(unset)",
        "YAML file with workloads, services and policies (ztunnel's local config format), "
        "instead of or besides xDS. Wins over LOCAL_XDS.",
        "/etc/ztunnel/local.yaml", "PATH"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.localXdsPath, v); }},
      {{"--local-xds", "LOCAL_XDS", "(unset)", "The same YAML, inline.", "workloads: []", "YAML"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.localXdsInline, v); }},
      {{"--cert-dir", "WORKLOAD_CERT_DIR", "(unset)",
        "Directory with this workload's certificate in Istio's file-mounted names: "
        "cert-chain.pem, key.pem, root-cert.pem. Used instead of the CA when set.",
        "/etc/certs", "DIR"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setString(b.cfg.certDir, v); }},
      {{"--worker-threads", "ZTUNNEL_WORKER_THREADS", "one per CPU",
        "Data-plane worker threads: N, N% of the CPUs (rounded up), or 0 = all CPUs.", "3", "N|N%"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         auto r = resolveWorkerThreads(v, 1);  // syntax check; resolved once the CPUs are known
         if (!r) {
           return fail(std::move(r).error());
         }
         b.cfg.workerThreadsSpec = std::string(v);
         return ok();
       }},
      {{"--cpu-limit", "ZTUNNEL_CPU_LIMIT", "CPUs this process may run on",
        "CPU count that N% and 0 worker threads are computed from (\"2\", \"1.5\", \"500m\").", "3",
        "CPUS"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         auto c = parseCpuLimit(v);
         if (!c) {
           return fail(std::move(c).error());
         }
         b.cpuLimit = *c;
         return ok();
       }},
      {{"--pool-max-streams-per-connection", "POOL_MAX_STREAMS_PER_CONNECTION", "100",
        "HBONE streams (tunnelled connections) per pooled HTTP/2 connection before another "
        "connection is opened.",
        "50", "N"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.cfg.poolMaxStreamsPerConnection,
                       parseU32(v, 1, 0x7fffffff, "a stream count"));
       }},
      {{"--pool-unused-release-timeout", "POOL_UNUSED_RELEASE_TIMEOUT", "5m",
        "How long an idle pooled HBONE connection is kept.", "30s", "DURATION"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setDuration(b.cfg.poolUnusedReleaseTimeout,
                            parseDurationIn(v, Duration::zero(), std::chrono::hours(24 * 365),
                                            "between 0s and 365d"));
       }},
      {{"--http2-stream-window-size", "HTTP2_STREAM_WINDOW_SIZE", "4194304 (4 MiB)",
        "HTTP/2 initial stream flow-control window, bytes (1..2147483647).", "1048576", "BYTES"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.cfg.http2StreamWindowSize, parseSize(v, 1, 0x7fffffff));
       }},
      {{"--http2-connection-window-size", "HTTP2_CONNECTION_WINDOW_SIZE", "16777216 (16 MiB)",
        "HTTP/2 connection flow-control window, bytes (up to 2147483647, at least the stream "
        "window; less than 4x the stream window draws a warning).",
        "33554432", "BYTES"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.cfg.http2ConnectionWindowSize, parseSize(v, 1, 0x7fffffff));
       }},
      {{"--http2-frame-size", "HTTP2_FRAME_SIZE", "1048576 (1 MiB)",
        "HTTP/2 maximum frame size, bytes (16384..16777215).", "65536", "BYTES"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.cfg.http2FrameSize, parseSize(v, 16384, 16777215));
       }},
      {{"--enable-socks5", "UNSTABLE_ENABLE_SOCKS5", "false",
        "Run the SOCKS5 outbound listener (--socks5-addr).", "true", "", true},
       "",
       [](Builder& b, std::string_view v) -> Status { return setBool(b.cfg.enableSocks5, v); }},
      {{"--tls12-enabled", "TLS12_ENABLED", "false", "Also allow TLS 1.2 (HBONE uses TLS 1.3).",
        "true", "", true},
       "",
       [](Builder& b, std::string_view v) -> Status { return setBool(b.cfg.tls12Enabled, v); }},
      {{"--keepalive-enabled", "KEEPALIVE_ENABLED", "true", "TCP keepalive on proxy sockets.",
        "false", "", true},
       "",
       [](Builder& b, std::string_view v) -> Status { return setBool(b.cfg.keepaliveEnabled, v); }},
      {{"--keepalive-time", "KEEPALIVE_TIME", "180s",
        "Idle time before the first keepalive probe (TCP_KEEPIDLE; 1s..32767s).", "60s",
        "DURATION"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setDuration(b.cfg.keepaliveTime,
                            parseDurationIn(v, std::chrono::seconds(1), std::chrono::seconds(32767),
                                            "between 1s and 32767s"));
       }},
      {{"--keepalive-interval", "KEEPALIVE_INTERVAL", "180s",
        "Interval between keepalive probes (TCP_KEEPINTVL; 1s..32767s).", "30s", "DURATION"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setDuration(b.cfg.keepaliveInterval,
                            parseDurationIn(v, std::chrono::seconds(1), std::chrono::seconds(32767),
                                            "between 1s and 32767s"));
       }},
      {{"--keepalive-retries", "KEEPALIVE_RETRIES", "9",
        "Unanswered probes before the connection is dropped (TCP_KEEPCNT; 1..127).", "5", "N"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.cfg.keepaliveRetries, parseU32(v, 1, 127, "a probe count"));
       }},
      {{"--user-timeout-enabled", "USER_TIMEOUT_ENABLED", "false",
        "Set TCP_USER_TIMEOUT = keepalive time + retries x interval on proxy sockets.", "true", "",
        true},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setBool(b.cfg.userTimeoutEnabled, v);
       }},
      {{"--connection-termination-deadline", "CONNECTION_TERMINATION_DEADLINE", "5s",
        "On shutdown, how long existing connections may drain before they are closed. Wins over "
        "TERMINATION_GRACE_PERIOD_SECONDS.",
        "20s", "DURATION"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         auto d =
             parseDurationIn(v, Duration::zero(), std::chrono::hours(24), "between 0s and 24h");
         if (!d) {
           return fail(std::move(d).error());
         }
         b.terminationDeadline = *d;
         return ok();
       }},
      {{"--termination-grace-period-seconds", "TERMINATION_GRACE_PERIOD_SECONDS", "(unset)",
        "The pod's grace period, whole seconds. Without CONNECTION_TERMINATION_DEADLINE the drain "
        "deadline is G-5s if G > 10, else G-1s, and at least 1s.",
        "30", "SECONDS"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         auto s = parseUnsigned(v);
         if (!s || *s > 86400) {
           return invalid("not a whole number of seconds (0..86400)");
         }
         b.gracePeriodSeconds = *s;
         return ok();
       }},
      {{"--packet-mark", "PACKET_MARK", "1337 (0x539)",
        "SO_MARK set on every socket ztunnel opens, so the capture rules skip its own traffic "
        "(decimal or 0x hex; 0 = no mark).",
        "0x540", "MARK"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.cfg.packetMark, parseU32(v, 0, 0xffffffffu, "a mark", true));
       }},
      {{"--enable-orig-src", "ENABLE_ORIG_SRC", "auto",
        "auto | true | false: connect to local workloads from the original client address "
        "(IP_TRANSPARENT). auto: when the listener can be made transparent.",
        "false", "auto|true|false"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         if (lower(v) == "auto") {
           b.cfg.enableOrigSrc = OrigSrc::kAuto;
           return ok();
         }
         auto on = parseBool(v);
         if (!on) {
           return invalid("expected auto, true or false");
         }
         b.cfg.enableOrigSrc = *on ? OrigSrc::kEnabled : OrigSrc::kDisabled;
         return ok();
       }},
      {{"--ipv6-enabled", "IPV6_ENABLED", "true",
        "Dual-stack listeners on [::]; when false the wildcard listeners bind 0.0.0.0.", "false",
        "", true},
       "",
       [](Builder& b, std::string_view v) -> Status { return setBool(b.cfg.ipv6Enabled, v); }},
      {{"--outbound-addr", "", "[::]:15001", "Outbound capture listener (redirected app egress).",
        "127.0.0.1:25001", "ADDR:PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setAddr(b.outbound, v); }},
      {{"--inbound-addr", "", "[::]:15008", "Inbound HBONE listener (mTLS + HTTP/2 CONNECT).",
        "127.0.0.1:25008", "ADDR:PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setAddr(b.inbound, v); }},
      {{"--inbound-plaintext-addr", "", "[::]:15006",
        "Inbound plaintext capture listener (redirected ingress).", "127.0.0.1:25006", "ADDR:PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setAddr(b.inboundPlaintext, v); }},
      {{"--socks5-addr", "", "127.0.0.1:15080", "SOCKS5 listener (with UNSTABLE_ENABLE_SOCKS5).",
        "127.0.0.1:25080", "ADDR:PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setAddr(b.cfg.socks5Addr, v); }},
      {{"--admin-addr", "", "127.0.0.1:15000",
        "Admin API listener (keep it on localhost). Not served by this build yet.",
        "127.0.0.1:25000", "ADDR:PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setAddr(b.cfg.adminAddr, v); }},
      {{"--stats-addr", "", "[::]:15020",
        "Prometheus metrics listener. Not served by this build yet.", "127.0.0.1:25020",
        "ADDR:PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setAddr(b.stats, v); }},
      {{"--readiness-addr", "", "[::]:15021",
        "Readiness (/healthz/ready) listener. Not served by this build yet.", "127.0.0.1:25021",
        "ADDR:PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status { return setAddr(b.readiness, v); }},
      {{"--log-format", "LOG_FORMAT", "text", "text | json.", "json", "FORMAT"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         if (v == "text") {
           b.cfg.logFormat = log::Format::kText;
         } else if (v == "json") {
           b.cfg.logFormat = log::Format::kJson;
         } else {
           return invalid("expected text or json");
         }
         return ok();
       }},
      {{"--log", "RUST_LOG", "info",
        "Log levels: LEVEL[,access=LEVEL] (trace, debug, info, warn, error, off); access is the "
        "per-connection access log.",
        "debug,access=info", "SPEC"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         if (auto levels = log::parseSpec(v); !levels) {
           return invalid(levels.error().detail());
         }
         return setString(b.cfg.logSpec, v.empty() ? std::string_view("info") : v);
       }},
  };
  return table;
}

const std::vector<Option>& redirectTable() {
  static const std::vector<Option> table = {
      {{"--outbound-port", "", "15001", "Port outgoing TCP is redirected to.", "25001", "PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setPort(b.redirect.outboundPort, v);
       }},
      {{"--inbound-plaintext-port", "", "15006", "Port incoming TCP is redirected to.", "25006",
        "PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setPort(b.redirect.inboundPlaintextPort, v);
       }},
      {{"--inbound-port", "", "15008", "HBONE port: incoming TCP to it is not redirected.", "25008",
        "PORT"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setPort(b.redirect.inboundHbonePort, v);
       }},
      {{"--packet-mark", "PACKET_MARK", "1337 (0x539)",
        "Mark of ztunnel's own sockets; marked packets are not redirected (must fit the mask).",
        "0x540", "MARK"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.redirect.packetMark, parseU32(v, 1, 0xffffffffu, "a mark", true));
       }},
      {{"--conn-mark", "", "0x111",
        "Connection mark for connections ztunnel opened, restored on replies for policy routing.",
        "0x222", "MARK"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.redirect.connMark, parseU32(v, 1, 0xffffffffu, "a mark", true));
       }},
      {{"--mark-mask", "", "0xfff", "Mask applied to both marks.", "0xffff", "MASK"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.redirect.markMask, parseU32(v, 1, 0xffffffffu, "a mask", true));
       }},
      {{"--route-table", "", "100", "Routing table for the local route of marked replies.", "200",
        "TABLE"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.redirect.routeTable, parseU32(v, 1, 0x7fffffff, "a table number"));
       }},
      {{"--rule-priority", "", "32764", "Priority of the fwmark ip rule.", "32000", "PRIO"},
       "",
       [](Builder& b, std::string_view v) -> Status {
         return setU32(b.redirect.rulePriority, parseU32(v, 1, 32765, "a rule priority"));
       }},
      {{"--ipv6-enabled", "IPV6_ENABLED", "true",
        "Also install the IPv6 rules (skipped with a log line when ip6tables nat is unusable).",
        "false", "", true},
       "",
       [](Builder& b, std::string_view v) -> Status { return setBool(b.redirect.ipv6, v); }},
      {{"--dry-run", "", "false", "Print the rules and commands instead of applying them.", "true",
        "", true},
       "",
       [](Builder& b, std::string_view v) -> Status { return setBool(b.redirect.dryRun, v); }},
  };
  return table;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

tl::unexpected<Error> unknownFlag(std::string_view flag, const std::vector<Option>& table,
                                  std::string_view helpCommand) {
  std::string_view best;
  size_t bestDist = 4;
  for (const auto& o : table) {
    size_t d = editDistance(flag, o.info.flag);
    if (d < bestDist) {
      bestDist = d;
      best = o.info.flag;
    }
  }
  std::string detail = std::string(flag);
  if (!best.empty()) {
    detail += fmt::format(" (did you mean {}?)", best);
  } else {
    // An environment variable name given as a flag is a common slip.
    for (const auto& o : table) {
      if (!o.info.env.empty() && lower(flag.substr(2)) == lower(o.info.env)) {
        detail += fmt::format(" (the flag for {} is {})", o.info.env, o.info.flag);
        return fail(ConfigErrc::kUnknownFlag, std::move(detail));
      }
    }
    detail += fmt::format(" (see `{}`)", helpCommand);
  }
  return fail(ConfigErrc::kUnknownFlag, std::move(detail));
}

Status applyOne(Builder& b, const Option& o, std::string_view label, std::string_view value) {
  auto st = o.apply(b, value);
  if (!st) {
    return fail(std::move(st).error().withContext(fmt::format("{}={}", label, value)));
  }
  return ok();
}

Status applyEnv(Builder& b, const std::vector<Option>& table, const EnvLookup& env) {
  for (const auto& o : table) {
    for (std::string_view name : {o.info.env, o.envOverride}) {
      if (name.empty()) {
        continue;
      }
      if (auto v = env(name)) {
        ZT_TRY_STATUS(applyOne(b, o, name, *v));
      }
    }
  }
  return ok();
}

// Parses flags (and, for commands that take them, positional arguments) starting at args[i].
Status applyFlags(Builder& b, const std::vector<Option>& table,
                  const std::vector<std::string>& args, size_t i,
                  std::vector<std::string>* positional, std::string_view helpCommand) {
  bool onlyPositional = false;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (onlyPositional || arg.size() < 2 || arg.rfind("--", 0) != 0) {
      if (arg == "-" || arg.empty() || arg[0] != '-' || onlyPositional) {
        if (positional == nullptr) {
          std::string hint;
          if (i > 0 && (arg == "true" || arg == "false")) {
            hint = " (boolean flags take --flag=false)";
          }
          return fail(ConfigErrc::kUnexpectedArgument, fmt::format("'{}'{}", arg, hint));
        }
        positional->push_back(arg);
        continue;
      }
      return fail(ConfigErrc::kUnknownFlag,
                  fmt::format("{} (flags are --long-names; see `{}`)", arg, helpCommand));
    }
    if (arg == "--") {
      onlyPositional = true;
      continue;
    }
    size_t eq = arg.find('=');
    std::string_view name = std::string_view(arg).substr(0, eq);
    auto it = std::find_if(table.begin(), table.end(),
                           [&](const Option& o) { return o.info.flag == name; });
    if (it == table.end()) {
      return unknownFlag(name, table, helpCommand);
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (it->info.isBool) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return fail(ConfigErrc::kMissingValue,
                  fmt::format("{} needs a value ({})", name, it->info.metavar));
    }
    ZT_TRY_STATUS(applyOne(b, *it, name, value));
  }
  return ok();
}

// Combines what needs every source applied first. `proxy` adds the checks that only matter when
// the proxy itself will run.
Status finalize(Builder& b, const EnvLookup& env, unsigned cpuCount, bool proxy) {
  Config& c = b.cfg;
  c.cpuCount = b.cpuLimit ? *b.cpuLimit : (cpuCount != 0 ? cpuCount : detectCpus());
  auto threads = resolveWorkerThreads(c.workerThreadsSpec, c.cpuCount);
  if (!threads) {
    return fail(std::move(threads).error().withContext(
        fmt::format("ZTUNNEL_WORKER_THREADS={}", c.workerThreadsSpec)));
  }
  c.workerThreads = *threads;

  if (b.terminationDeadline) {
    c.selfTerminationDeadline = *b.terminationDeadline;
  } else if (b.gracePeriodSeconds) {
    int64_t g = static_cast<int64_t>(*b.gracePeriodSeconds);
    int64_t secs = g > 10 ? g - 5 : g - 1;
    c.selfTerminationDeadline = std::chrono::seconds(std::max<int64_t>(secs, 1));
  }

  // Outside Kubernetes there is no istiod to assume: no default control plane.
  const bool inKubernetes = env("KUBERNETES_SERVICE_HOST").has_value();
  if (!b.xdsExplicit && inKubernetes) {
    c.xdsAddress = std::string(kIstiodAddress);
  }
  if (!b.caExplicit && inKubernetes) {
    c.caAddress = std::string(kIstiodAddress);
  }

  const IpAddress wildcard = c.ipv6Enabled ? IpAddress::v6(in6addr_any) : IpAddress();
  struct Listener {
    std::optional<SocketAddress>& explicitAddr;
    SocketAddress& field;
    std::string_view flag;
  };
  for (Listener l :
       {Listener{b.outbound, c.outboundAddr, "--outbound-addr"},
        Listener{b.inbound, c.inboundAddr, "--inbound-addr"},
        Listener{b.inboundPlaintext, c.inboundPlaintextAddr, "--inbound-plaintext-addr"},
        Listener{b.stats, c.statsAddr, "--stats-addr"},
        Listener{b.readiness, c.readinessAddr, "--readiness-addr"}}) {
    l.field = l.explicitAddr ? *l.explicitAddr : SocketAddress(wildcard, l.field.port());
    if (!c.ipv6Enabled && l.field.ip().isV6()) {
      return fail(ConfigErrc::kConflict,
                  fmt::format("{}={} is IPv6 but IPV6_ENABLED=false", l.flag, l.field.toString()));
    }
  }

  if (c.http2ConnectionWindowSize < c.http2StreamWindowSize) {
    return fail(ConfigErrc::kConflict,
                fmt::format("HTTP2_CONNECTION_WINDOW_SIZE ({}) must be at least "
                            "HTTP2_STREAM_WINDOW_SIZE ({})",
                            c.http2ConnectionWindowSize, c.http2StreamWindowSize));
  }
  if (static_cast<uint64_t>(c.http2ConnectionWindowSize) <
      4ull * static_cast<uint64_t>(c.http2StreamWindowSize)) {
    c.warnings.push_back(fmt::format(
        "HTTP2_CONNECTION_WINDOW_SIZE ({}) is less than 4x HTTP2_STREAM_WINDOW_SIZE ({}): a few "
        "busy streams can stall the others on the same connection",
        c.http2ConnectionWindowSize, c.http2StreamWindowSize));
  }
  if (!c.localXdsPath.empty() && !c.localXdsInline.empty()) {
    c.warnings.push_back("both LOCAL_XDS_PATH and LOCAL_XDS are set: LOCAL_XDS_PATH is used");
  }
  if (!proxy) {
    return ok();
  }
  if (c.proxyMode == ProxyMode::kShared) {
    std::string detail = "PROXY_MODE=shared (in-pod) is not supported yet; use dedicated";
    if (!b.proxyModeExplicit) {
      detail +=
          " (shared is the default: set PROXY_MODE=dedicated and "
          "PROXY_WORKLOAD_INFO=ns/name/sa)";
    }
    return fail(ConfigErrc::kUnsupported, std::move(detail));
  }
  if (!c.workloadInfo) {
    return fail(ConfigErrc::kMissingRequired,
                "PROXY_WORKLOAD_INFO (ns/name/sa) is required in dedicated mode");
  }
  if (c.xdsAddress.empty() && c.localXdsPath.empty() && c.localXdsInline.empty()) {
    c.warnings.push_back(
        "no XDS_ADDRESS and no LOCAL_XDS_PATH/LOCAL_XDS: no workload state, so no traffic can be "
        "proxied");
  }
  if (c.certDir.empty() && c.caAddress.empty()) {
    c.warnings.push_back(
        "no WORKLOAD_CERT_DIR and no CA_ADDRESS: no workload certificate, so HBONE cannot work");
  }
  return ok();
}

std::vector<OptionInfo> infos(const std::vector<Option>& table) {
  std::vector<OptionInfo> out;
  out.reserve(table.size());
  for (const auto& o : table) {
    out.push_back(o.info);
  }
  return out;
}

// Wraps `text` at 96 columns with the given indent.
std::string wrap(std::string_view text, std::string_view indent) {
  std::string out;
  std::string line(indent);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t sp = text.find(' ', pos);
    std::string_view word = text.substr(pos, sp == std::string_view::npos ? sp : sp - pos);
    pos = sp == std::string_view::npos ? text.size() : sp + 1;
    if (line.size() > indent.size() && line.size() + 1 + word.size() > 96) {
      out += line + "\n";
      line = std::string(indent);
    }
    if (line.size() > indent.size()) {
      line += ' ';
    }
    line += word;
  }
  if (line.size() > indent.size()) {
    out += line + "\n";
  }
  return out;
}

std::string optionsHelp(const std::vector<Option>& table) {
  std::string out;
  for (const auto& o : table) {
    const auto& i = o.info;
    out += "  " + std::string(i.flag);
    if (i.isBool) {
      out += "[=true|false]";
    } else {
      out += " " + std::string(i.metavar);
    }
    out += "\n";
    std::string src;
    if (!i.env.empty()) {
      src = "env " + std::string(i.env);
      if (!o.envOverride.empty()) {
        src += " (" + std::string(o.envOverride) + " wins)";
      }
      src += "; ";
    }
    src += "default: " + std::string(i.defaultValue);
    out += wrap(src, "      ");
    out += wrap(i.meaning, "      ");
  }
  return out;
}

constexpr std::string_view kSyntaxHelp =
    "Flags win over environment variables. Flags are --flag VALUE or --flag=VALUE; boolean flags\n"
    "also take the bare --flag (= true). Durations: 250ms, 10s, 5m, 1h30m, 1.5h (units ns us ms s\n"
    "m h d; a bare number is seconds). Booleans: true/false/1/0, any case. Sizes: bytes.\n";

Result<Config> helpFor(std::string_view topic) {
  Config c;
  if (topic.empty() || topic == "proxy" || topic == "help" || topic == "version") {
    c.command = HelpCommand{helpText()};
  } else if (topic == "redirect") {
    c.command = HelpCommand{redirectHelpText()};
  } else if (topic == "certs") {
    c.command = HelpCommand{certsHelpText()};
  } else {
    return fail(ConfigErrc::kUnknownCommand,
                fmt::format("'{}' (commands: proxy, version, help, certs, redirect)", topic));
  }
  return c;
}

}  // namespace

const ErrorCategory& errorCategory(ConfigErrc) noexcept {
  static constexpr ErrorCategory kCategory{"config", &describeConfig};
  return kCategory;
}

EnvLookup processEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
}

Result<Duration> parseDuration(std::string_view text) {
  if (text.empty()) {
    return invalid("not a duration (e.g. 250ms, 10s, 5m, 1h30m)");
  }
  auto notDuration = [] { return invalid("not a duration (e.g. 250ms, 10s, 5m, 1h30m)"); };
  // A bare number is seconds (ztunnel's duration_str does the same).
  if (auto bare = parseDecimal(text)) {
    if (*bare * 1e9 > static_cast<double>(std::numeric_limits<int64_t>::max())) {
      return invalid("duration too large");
    }
    return Duration(static_cast<int64_t>(std::llround(*bare * 1e9)));
  }
  long double total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t numEnd = pos;
    while (numEnd < text.size() &&
           ((text[numEnd] >= '0' && text[numEnd] <= '9') || text[numEnd] == '.')) {
      ++numEnd;
    }
    auto number = parseDecimal(text.substr(pos, numEnd - pos));
    if (!number) {
      return notDuration();
    }
    size_t unitEnd = numEnd;
    while (unitEnd < text.size() && !(text[unitEnd] >= '0' && text[unitEnd] <= '9') &&
           text[unitEnd] != '.') {
      ++unitEnd;
    }
    std::string_view unit = text.substr(numEnd, unitEnd - numEnd);
    long double scale;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") {  // µs, μs
      scale = 1e3;
    } else if (unit == "ms") {
      scale = 1e6;
    } else if (unit == "s") {
      scale = 1e9;
    } else if (unit == "m") {
      scale = 60e9;
    } else if (unit == "h") {
      scale = 3600e9;
    } else if (unit == "d") {
      scale = 86400e9;
    } else {
      return unit.empty() ? notDuration()
                          : invalid(fmt::format("unknown duration unit '{}' (ns, us, ms, s, m, "
                                                "h, d)",
                                                unit));
    }
    total += static_cast<long double>(*number) * scale;
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
      return invalid("duration too large");
    }
    pos = unitEnd;
  }
  return Duration(static_cast<int64_t>(std::llround(static_cast<double>(total))));
}

Result<bool> parseBool(std::string_view text) {
  std::string v = lower(text);
  if (v == "true" || v == "1") {
    return true;
  }
  if (v == "false" || v == "0") {
    return false;
  }
  return invalid("not a boolean (true/false/1/0)");
}

Result<uint64_t> parseByteCount(std::string_view text) {
  auto v = parseUnsigned(text);
  if (!v) {
    return invalid("not a byte count");
  }
  return *v;
}

Result<unsigned> resolveWorkerThreads(std::string_view spec, unsigned cpuCount) {
  cpuCount = std::max(cpuCount, 1u);
  if (spec.empty()) {
    return cpuCount;
  }
  if (spec.back() == '%') {
    auto pct = parseDecimal(spec.substr(0, spec.size() - 1));
    if (!pct || *pct <= 0 || *pct > 100) {
      return invalid("percentage must be more than 0 and at most 100");
    }
    auto n = static_cast<unsigned>(std::ceil(static_cast<double>(cpuCount) * *pct / 100.0));
    return std::max(n, 1u);
  }
  auto n = parseUnsigned(spec);
  if (!n) {
    return invalid("expected N, N% or 0 (all CPUs)");
  }
  if (*n > 1024) {
    return invalid("at most 1024 worker threads");
  }
  return *n == 0 ? cpuCount : static_cast<unsigned>(*n);
}

const std::vector<OptionInfo>& proxyOptions() {
  static const std::vector<OptionInfo> list = infos(proxyTable());
  return list;
}

const std::vector<OptionInfo>& redirectOptions() {
  static const std::vector<OptionInfo> list = infos(redirectTable());
  return list;
}

std::string helpText() {
  std::string out =
      "ztunnel: node-level L4 tunnel proxy, wire-compatible with Istio ambient's ztunnel\n"
      "\n"
      "Usage:\n"
      "  ztunnel [proxy] [FLAGS]                 run the proxy (the default command)\n"
      "  ztunnel version                         print the version\n"
      "  ztunnel help [COMMAND]                  print help (also --help or -h)\n"
      "  ztunnel certs create-root|issue|show ... certificate tooling (see `ztunnel help certs`)\n"
      "  ztunnel redirect install|remove [REDIRECT FLAGS]\n"
      "                                          add/remove the capture rules in this network\n"
      "                                          namespace (see `ztunnel help redirect`)\n"
      "\n";
  out += kSyntaxHelp;
  out += "\nProxy flags and environment variables:\n";
  out += optionsHelp(proxyTable());
  out += "\nRedirect flags (ztunnel redirect install|remove):\n";
  out += optionsHelp(redirectTable());
  return out;
}

std::string redirectHelpText() {
  std::string out =
      "Usage: ztunnel redirect install|remove [FLAGS]\n"
      "\n"
      "Installs (or removes) in the current network namespace the capture rules of istio-cni's\n"
      "in-pod mode: outgoing TCP not to 127.0.0.1 and not marked is redirected to the outbound\n"
      "port, incoming TCP except to the HBONE port to the inbound plaintext port; connections\n"
      "ztunnel opened are connmarked and their replies routed back locally (ip rule + table).\n"
      "install is idempotent; remove deletes exactly what install adds. Needs CAP_NET_ADMIN.\n"
      "\n";
  out += kSyntaxHelp;
  out += "\nFlags:\n";
  out += optionsHelp(redirectTable());
  return out;
}

std::string certsHelpText() {
  return certsUsage();
}

std::string_view toString(ProxyMode mode) {
  return mode == ProxyMode::kDedicated ? "dedicated" : "shared";
}

std::string_view toString(OrigSrc value) {
  switch (value) {
    case OrigSrc::kAuto:
      return "auto";
    case OrigSrc::kEnabled:
      return "true";
    case OrigSrc::kDisabled:
      return "false";
  }
  return "auto";
}

Result<Config> loadConfig(int argc, const char* const* argv, const EnvLookup& env,
                          unsigned cpuCount) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    args.emplace_back(argv[i]);
  }
  return loadConfig(args, env, cpuCount);
}

Result<Config> loadConfig(const std::vector<std::string>& args, const EnvLookup& env,
                          unsigned cpuCount) {
  std::string command = "proxy";
  size_t first = 0;
  if (!args.empty() && !args[0].empty() && args[0][0] != '-') {
    command = args[0];
    first = 1;
  }
  const bool wantsHelp =
      std::any_of(args.begin() + static_cast<std::ptrdiff_t>(first), args.end(),
                  [](const std::string& a) { return a == "--help" || a == "-h"; });
  if (command == "help") {
    if (args.size() > 2) {
      return fail(ConfigErrc::kUnexpectedArgument, fmt::format("'{}'", args[2]));
    }
    std::string_view topic = args.size() == 2 ? std::string_view(args[1]) : std::string_view{};
    return helpFor(topic.rfind('-', 0) == 0 ? std::string_view{} : topic);
  }
  if (command != "proxy" && command != "version" && command != "certs" && command != "redirect") {
    return fail(ConfigErrc::kUnknownCommand,
                fmt::format("'{}' (commands: proxy, version, help, certs, redirect)", command));
  }
  if (command == "certs") {
    // The certs tool has its own flags (see app/certs_command.h): hand them over untouched.
    Config c;
    c.command = CertsCommand{std::vector<std::string>(args.begin() + 1, args.end())};
    return c;
  }
  if (wantsHelp) {
    return helpFor(command);
  }
  if (command == "version") {
    if (args.size() > 1) {
      return fail(ConfigErrc::kUnexpectedArgument, fmt::format("'{}'", args[1]));
    }
    Config c;
    c.command = VersionCommand{};
    return c;
  }

  Builder b;
  if (command == "redirect") {
    if (args.size() < 2 || (args[1] != "install" && args[1] != "remove")) {
      return fail(ConfigErrc::kUnexpectedArgument,
                  fmt::format("redirect needs install or remove{}",
                              args.size() < 2 ? std::string() : ", not '" + args[1] + "'"));
    }
    b.redirect.action =
        args[1] == "install" ? redirect::Action::kInstall : redirect::Action::kRemove;
    ZT_TRY_STATUS(applyEnv(b, redirectTable(), env));
    ZT_TRY_STATUS(applyFlags(b, redirectTable(), args, 2, nullptr, "ztunnel help redirect"));
    auto valid = redirect::validate(b.redirect);
    if (!valid) {
      return fail(ConfigErrc::kInvalidValue, "redirect: " + valid.error().detail());
    }
    b.cfg.command = RedirectCommand{b.redirect};
    return std::move(b.cfg);
  }

  ZT_TRY_STATUS(applyEnv(b, proxyTable(), env));
  ZT_TRY_STATUS(applyFlags(b, proxyTable(), args, first, nullptr, "ztunnel --help"));
  ZT_TRY_STATUS(finalize(b, env, cpuCount, true));
  b.cfg.command = ProxyCommand{};
  return std::move(b.cfg);
}

Result<Config> loadProxyOptions(const std::vector<std::string>& args, const EnvLookup& env,
                                unsigned cpuCount) {
  Builder b;
  ZT_TRY_STATUS(applyEnv(b, proxyTable(), env));
  ZT_TRY_STATUS(applyFlags(b, proxyTable(), args, 0, nullptr, "ztunnel --help"));
  ZT_TRY_STATUS(finalize(b, env, cpuCount, false));
  b.cfg.command = ProxyCommand{};
  return std::move(b.cfg);
}

}  // namespace zt::app
