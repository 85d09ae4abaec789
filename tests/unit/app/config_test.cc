#include "ztunnel/app/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace zt::app {
namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;

EnvLookup lookup(const Env& env) {
  return [env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

const Env kDedicated = {{"PROXY_MODE", "dedicated"}, {"PROXY_WORKLOAD_INFO", "default/app/sa"}};

Env with(Env base, const Env& extra) {
  for (const auto& [k, v] : extra) {
    base[k] = v;
  }
  return base;
}

Result<Config> load(const std::vector<std::string>& args, const Env& env = kDedicated,
                    unsigned cpus = 4) {
  return loadConfig(args, lookup(env), cpus);
}

Config mustLoad(const std::vector<std::string>& args, const Env& env = kDedicated,
                unsigned cpus = 4) {
  auto c = load(args, env, cpus);
  EXPECT_TRUE(c) << c.error().message();
  return c ? *c : Config{};
}

// Loads and expects an error of `code` whose detail is exactly `detail`.
void expectError(const std::vector<std::string>& args, const Env& env, ConfigErrc code,
                 const std::string& detail) {
  auto c = load(args, env);
  ASSERT_FALSE(c) << "expected error: " << detail;
  EXPECT_TRUE(c.error().is(code)) << c.error().message();
  EXPECT_EQ(c.error().detail(), detail);
}

bool hasWarning(const Config& c, std::string_view needle) {
  for (const auto& w : c.warnings) {
    if (w.find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

TEST(ConfigDefaults, MatchZtunnel) {
  Config c = mustLoad({});
  EXPECT_TRUE(std::holds_alternative<ProxyCommand>(c.command));
  EXPECT_EQ(c.proxyMode, ProxyMode::kDedicated);
  ASSERT_TRUE(c.workloadInfo);
  EXPECT_EQ(*c.workloadInfo, (WorkloadInfo{"default", "app", "sa"}));
  EXPECT_EQ(c.trustDomain, "cluster.local");
  EXPECT_EQ(c.clusterId, "Kubernetes");
  EXPECT_EQ(c.clusterDomain, "cluster.local");
  EXPECT_EQ(c.network, "");
  EXPECT_EQ(c.nodeName, "");
  EXPECT_TRUE(c.enableProxy);
  EXPECT_EQ(c.xdsAddress, "");  // not in Kubernetes: no xDS
  EXPECT_EQ(c.caAddress, "");
  EXPECT_EQ(c.xdsRootCa, "./var/run/secrets/istio/root-cert.pem");
  EXPECT_EQ(c.caRootCa, "./var/run/secrets/istio/root-cert.pem");
  EXPECT_EQ(c.authToken, "./var/run/secrets/tokens/istio-token");
  EXPECT_EQ(c.secretTtl, 24h);
  EXPECT_EQ(c.localXdsPath, "");
  EXPECT_EQ(c.localXdsInline, "");
  EXPECT_EQ(c.certDir, "");
  EXPECT_EQ(c.workerThreads, 4u);  // one per CPU
  EXPECT_EQ(c.cpuCount, 4u);
  EXPECT_EQ(c.poolMaxStreamsPerConnection, 100u);
  EXPECT_EQ(c.poolUnusedReleaseTimeout, 5min);
  EXPECT_EQ(c.http2StreamWindowSize, 4u * 1024 * 1024);
  EXPECT_EQ(c.http2ConnectionWindowSize, 16u * 1024 * 1024);
  EXPECT_EQ(c.http2FrameSize, 1024u * 1024);
  EXPECT_FALSE(c.enableSocks5);
  EXPECT_FALSE(c.tls12Enabled);
  EXPECT_TRUE(c.keepaliveEnabled);
  EXPECT_EQ(c.keepaliveTime, 180s);
  EXPECT_EQ(c.keepaliveInterval, 180s);
  EXPECT_EQ(c.keepaliveRetries, 9u);
  EXPECT_FALSE(c.userTimeoutEnabled);
  EXPECT_EQ(c.selfTerminationDeadline, 5s);
  EXPECT_EQ(c.packetMark, 1337u);
  EXPECT_EQ(c.enableOrigSrc, OrigSrc::kAuto);
  EXPECT_TRUE(c.ipv6Enabled);
  EXPECT_EQ(c.outboundAddr.toString(), "[::]:15001");
  EXPECT_EQ(c.inboundAddr.toString(), "[::]:15008");
  EXPECT_EQ(c.inboundPlaintextAddr.toString(), "[::]:15006");
  EXPECT_EQ(c.socks5Addr.toString(), "127.0.0.1:15080");
  EXPECT_EQ(c.adminAddr.toString(), "127.0.0.1:15000");
  EXPECT_EQ(c.statsAddr.toString(), "[::]:15020");
  EXPECT_EQ(c.readinessAddr.toString(), "[::]:15021");
  EXPECT_EQ(c.logFormat, log::Format::kText);
  EXPECT_EQ(c.logSpec, "info");
  EXPECT_TRUE(hasWarning(c, "no XDS_ADDRESS and no LOCAL_XDS_PATH"));
  EXPECT_TRUE(hasWarning(c, "no WORKLOAD_CERT_DIR and no CA_ADDRESS"));
}

TEST(ConfigDefaults, DefaultConstructedConfigHasTheSameDefaults) {
  // Config{} is what version/help return; keep it consistent with a loaded one.
  auto opts = loadProxyOptions({}, lookup({}), 1);
  ASSERT_TRUE(opts) << opts.error().message();
  Config loaded = *opts;
  Config plain;
  plain.warnings = loaded.warnings;
  EXPECT_EQ(loaded, plain);
}

TEST(ConfigDefaults, InKubernetesControlPlaneDefaultsToIstiod) {
  Config c = mustLoad({}, with(kDedicated, {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}));
  EXPECT_EQ(c.xdsAddress, "https://istiod.istio-system.svc:15012");
  EXPECT_EQ(c.caAddress, "https://istiod.istio-system.svc:15012");
  // Explicitly empty still means off.
  c = mustLoad({}, with(kDedicated, {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                     {"XDS_ADDRESS", ""},
                                     {"CA_ADDRESS", ""}}));
  EXPECT_EQ(c.xdsAddress, "");
  EXPECT_EQ(c.caAddress, "");
}

struct VarCase {
  std::string var;
  std::string value;
  std::function<void(const Config&)> check;
};

TEST(ConfigEnv, EachVariable) {
  const std::vector<VarCase> cases = {
      {"PROXY_WORKLOAD_INFO", "prod/web-1.x/web-sa",
       [](const Config& c) {
         EXPECT_EQ(*c.workloadInfo, (WorkloadInfo{"prod", "web-1.x", "web-sa"}));
       }},
      {"TRUST_DOMAIN", "example.org",
       [](const Config& c) { EXPECT_EQ(c.trustDomain, "example.org"); }},
      {"CLUSTER_ID", "c2", [](const Config& c) { EXPECT_EQ(c.clusterId, "c2"); }},
      {"ISTIO_META_CLUSTER_ID", "c3", [](const Config& c) { EXPECT_EQ(c.clusterId, "c3"); }},
      {"CLUSTER_DOMAIN", "corp.local",
       [](const Config& c) { EXPECT_EQ(c.clusterDomain, "corp.local"); }},
      {"NETWORK", "net1", [](const Config& c) { EXPECT_EQ(c.network, "net1"); }},
      {"NODE_NAME", "node-a", [](const Config& c) { EXPECT_EQ(c.nodeName, "node-a"); }},
      {"ENABLE_PROXY", "false", [](const Config& c) { EXPECT_FALSE(c.enableProxy); }},
      {"XDS_ADDRESS", "istiod.example:15012",
       [](const Config& c) { EXPECT_EQ(c.xdsAddress, "https://istiod.example:15012"); }},
      {"XDS_ADDRESS", "http://127.0.0.1:15010",
       [](const Config& c) { EXPECT_EQ(c.xdsAddress, "http://127.0.0.1:15010"); }},
      {"CA_ADDRESS", "https://[::1]:15012",
       [](const Config& c) { EXPECT_EQ(c.caAddress, "https://[::1]:15012"); }},
      {"XDS_ROOT_CA", "SYSTEM", [](const Config& c) { EXPECT_EQ(c.xdsRootCa, "SYSTEM"); }},
      {"CA_ROOT_CA", "/etc/ca.pem", [](const Config& c) { EXPECT_EQ(c.caRootCa, "/etc/ca.pem"); }},
      {"ALT_XDS_HOSTNAME", "istiod.alt",
       [](const Config& c) { EXPECT_EQ(c.altXdsHostname, "istiod.alt"); }},
      {"ALT_CA_HOSTNAME", "ca.alt", [](const Config& c) { EXPECT_EQ(c.altCaHostname, "ca.alt"); }},
      {"AUTH_TOKEN", "/tmp/tok", [](const Config& c) { EXPECT_EQ(c.authToken, "/tmp/tok"); }},
      {"SECRET_TTL", "12h", [](const Config& c) { EXPECT_EQ(c.secretTtl, 12h); }},
      {"LOCAL_XDS_PATH", "/etc/zt.yaml",
       [](const Config& c) {
         EXPECT_EQ(c.localXdsPath, "/etc/zt.yaml");
         EXPECT_FALSE(hasWarning(c, "no XDS_ADDRESS"));
       }},
      {"LOCAL_XDS", "workloads: []",
       [](const Config& c) { EXPECT_EQ(c.localXdsInline, "workloads: []"); }},
      {"WORKLOAD_CERT_DIR", "/etc/certs",
       [](const Config& c) {
         EXPECT_EQ(c.certDir, "/etc/certs");
         EXPECT_FALSE(hasWarning(c, "no WORKLOAD_CERT_DIR"));
       }},
      {"ZTUNNEL_WORKER_THREADS", "3",
       [](const Config& c) {
         EXPECT_EQ(c.workerThreads, 3u);
         EXPECT_EQ(c.workerThreadsSpec, "3");
       }},
      {"ZTUNNEL_WORKER_THREADS", "50%", [](const Config& c) { EXPECT_EQ(c.workerThreads, 2u); }},
      {"ZTUNNEL_WORKER_THREADS", "0", [](const Config& c) { EXPECT_EQ(c.workerThreads, 4u); }},
      {"ZTUNNEL_CPU_LIMIT", "1500m",
       [](const Config& c) {
         EXPECT_EQ(c.cpuCount, 2u);
         EXPECT_EQ(c.workerThreads, 2u);
       }},
      {"POOL_MAX_STREAMS_PER_CONNECTION", "7",
       [](const Config& c) { EXPECT_EQ(c.poolMaxStreamsPerConnection, 7u); }},
      {"POOL_UNUSED_RELEASE_TIMEOUT", "1h30m",
       [](const Config& c) { EXPECT_EQ(c.poolUnusedReleaseTimeout, 90min); }},
      {"HTTP2_STREAM_WINDOW_SIZE", "1048576",
       [](const Config& c) { EXPECT_EQ(c.http2StreamWindowSize, 1048576u); }},
      {"HTTP2_CONNECTION_WINDOW_SIZE", "2147483647",
       [](const Config& c) { EXPECT_EQ(c.http2ConnectionWindowSize, 2147483647u); }},
      {"HTTP2_FRAME_SIZE", "16384", [](const Config& c) { EXPECT_EQ(c.http2FrameSize, 16384u); }},
      {"HTTP2_FRAME_SIZE", "16777215",
       [](const Config& c) { EXPECT_EQ(c.http2FrameSize, 16777215u); }},
      {"UNSTABLE_ENABLE_SOCKS5", "TRUE", [](const Config& c) { EXPECT_TRUE(c.enableSocks5); }},
      {"TLS12_ENABLED", "1", [](const Config& c) { EXPECT_TRUE(c.tls12Enabled); }},
      {"KEEPALIVE_ENABLED", "False", [](const Config& c) { EXPECT_FALSE(c.keepaliveEnabled); }},
      {"KEEPALIVE_TIME", "60", [](const Config& c) { EXPECT_EQ(c.keepaliveTime, 60s); }},
      {"KEEPALIVE_INTERVAL", "2m", [](const Config& c) { EXPECT_EQ(c.keepaliveInterval, 120s); }},
      {"KEEPALIVE_RETRIES", "127", [](const Config& c) { EXPECT_EQ(c.keepaliveRetries, 127u); }},
      {"USER_TIMEOUT_ENABLED", "true", [](const Config& c) { EXPECT_TRUE(c.userTimeoutEnabled); }},
      {"CONNECTION_TERMINATION_DEADLINE", "250ms",
       [](const Config& c) { EXPECT_EQ(c.selfTerminationDeadline, 250ms); }},
      {"TERMINATION_GRACE_PERIOD_SECONDS", "30",
       [](const Config& c) { EXPECT_EQ(c.selfTerminationDeadline, 25s); }},
      {"PACKET_MARK", "0x540", [](const Config& c) { EXPECT_EQ(c.packetMark, 0x540u); }},
      {"PACKET_MARK", "0", [](const Config& c) { EXPECT_EQ(c.packetMark, 0u); }},
      {"ENABLE_ORIG_SRC", "true",
       [](const Config& c) { EXPECT_EQ(c.enableOrigSrc, OrigSrc::kEnabled); }},
      {"ENABLE_ORIG_SRC", "false",
       [](const Config& c) { EXPECT_EQ(c.enableOrigSrc, OrigSrc::kDisabled); }},
      {"ENABLE_ORIG_SRC", "AUTO",
       [](const Config& c) { EXPECT_EQ(c.enableOrigSrc, OrigSrc::kAuto); }},
      {"IPV6_ENABLED", "false",
       [](const Config& c) {
         EXPECT_FALSE(c.ipv6Enabled);
         EXPECT_EQ(c.outboundAddr.toString(), "0.0.0.0:15001");
         EXPECT_EQ(c.inboundAddr.toString(), "0.0.0.0:15008");
         EXPECT_EQ(c.inboundPlaintextAddr.toString(), "0.0.0.0:15006");
         EXPECT_EQ(c.statsAddr.toString(), "0.0.0.0:15020");
         EXPECT_EQ(c.readinessAddr.toString(), "0.0.0.0:15021");
         EXPECT_EQ(c.adminAddr.toString(), "127.0.0.1:15000");
         EXPECT_EQ(c.socks5Addr.toString(), "127.0.0.1:15080");
       }},
      {"LOG_FORMAT", "json", [](const Config& c) { EXPECT_EQ(c.logFormat, log::Format::kJson); }},
      {"RUST_LOG", "debug,access=warn",
       [](const Config& c) { EXPECT_EQ(c.logSpec, "debug,access=warn"); }},
      {"RUST_LOG", "", [](const Config& c) { EXPECT_EQ(c.logSpec, "info"); }},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.var + "=" + tc.value);
    auto c = load({}, with(kDedicated, {{tc.var, tc.value}}));
    ASSERT_TRUE(c) << c.error().message();
    tc.check(*c);
  }
}

TEST(ConfigEnv, IstioMetaClusterIdWinsOverClusterIdAndFlagWinsOverBoth) {
  Env env = with(kDedicated, {{"CLUSTER_ID", "a"}, {"ISTIO_META_CLUSTER_ID", "b"}});
  EXPECT_EQ(mustLoad({}, env).clusterId, "b");
  EXPECT_EQ(mustLoad({"--cluster-id", "c"}, env).clusterId, "c");
}

TEST(ConfigEnv, TerminationDeadlineRule) {
  struct Case {
    std::string grace;
    Duration want;
  };
  for (const auto& tc : std::vector<Case>{
           {"30", 25s}, {"11", 6s}, {"10", 9s}, {"5", 4s}, {"2", 1s}, {"1", 1s}, {"0", 1s}}) {
    SCOPED_TRACE(tc.grace);
    EXPECT_EQ(mustLoad({}, with(kDedicated, {{"TERMINATION_GRACE_PERIOD_SECONDS", tc.grace}}))
                  .selfTerminationDeadline,
              tc.want);
  }
  EXPECT_EQ(mustLoad({}, with(kDedicated, {{"TERMINATION_GRACE_PERIOD_SECONDS", "30"},
                                           {"CONNECTION_TERMINATION_DEADLINE", "20s"}}))
                .selfTerminationDeadline,
            20s);
}

TEST(ConfigEnv, LocalXdsPathWinsWithWarning) {
  Config c = mustLoad({}, with(kDedicated, {{"LOCAL_XDS_PATH", "/a.yaml"}, {"LOCAL_XDS", "x: 1"}}));
  EXPECT_TRUE(hasWarning(c, "LOCAL_XDS_PATH is used"));
}

TEST(ConfigEnv, SmallConnectionWindowWarns) {
  Config c = mustLoad({}, with(kDedicated, {{"HTTP2_STREAM_WINDOW_SIZE", "4194304"},
                                            {"HTTP2_CONNECTION_WINDOW_SIZE", "8388608"}}));
  EXPECT_TRUE(hasWarning(c, "less than 4x HTTP2_STREAM_WINDOW_SIZE"));
  EXPECT_FALSE(hasWarning(mustLoad({}), "less than 4x"));
}

TEST(ConfigFlags, FlagWinsOverEnvInBothForms) {
  Env env = with(kDedicated, {{"HTTP2_FRAME_SIZE", "65536"}, {"NETWORK", "envnet"}});
  Config c = mustLoad({"--http2-frame-size=32768", "--network", "flagnet"}, env);
  EXPECT_EQ(c.http2FrameSize, 32768u);
  EXPECT_EQ(c.network, "flagnet");
  // The env value alone is used when there is no flag.
  EXPECT_EQ(mustLoad({}, env).http2FrameSize, 65536u);
  // A bad env value is still an error even when the flag would override it: both are read.
  expectError({"--http2-frame-size=32768"}, with(kDedicated, {{"HTTP2_FRAME_SIZE", "abc"}}),
              ConfigErrc::kInvalidValue, "HTTP2_FRAME_SIZE=abc: not a byte count");
}

TEST(ConfigFlags, BooleanFlagForms) {
  EXPECT_TRUE(mustLoad({"--enable-socks5"}).enableSocks5);
  EXPECT_TRUE(mustLoad({"--enable-socks5=true"}).enableSocks5);
  EXPECT_FALSE(
      mustLoad({"--enable-socks5=false"}, with(kDedicated, {{"UNSTABLE_ENABLE_SOCKS5", "true"}}))
          .enableSocks5);
}

TEST(ConfigFlags, ProxySubcommandAndModeFlags) {
  Config c = mustLoad({"proxy", "--proxy-mode", "dedicated", "--workload-info", "ns1/n1/sa1"}, {});
  EXPECT_TRUE(std::holds_alternative<ProxyCommand>(c.command));
  EXPECT_EQ(*c.workloadInfo, (WorkloadInfo{"ns1", "n1", "sa1"}));
}

TEST(ConfigFlags, ListenerAddresses) {
  Config c = mustLoad({"--outbound-addr=127.0.0.1:25001", "--inbound-addr", "[::1]:25008",
                       "--inbound-plaintext-addr=127.0.0.1:0", "--socks5-addr=127.0.0.1:1080",
                       "--admin-addr=127.0.0.1:0", "--stats-addr=127.0.0.1:0",
                       "--readiness-addr=127.0.0.1:0"});
  EXPECT_EQ(c.outboundAddr.toString(), "127.0.0.1:25001");
  EXPECT_EQ(c.inboundAddr.toString(), "[::1]:25008");
  EXPECT_EQ(c.inboundPlaintextAddr.toString(), "127.0.0.1:0");
  EXPECT_EQ(c.socks5Addr.toString(), "127.0.0.1:1080");
  // Explicit v4 addresses stay when IPv6 is disabled.
  c = mustLoad({"--outbound-addr=127.0.0.1:25001", "--ipv6-enabled=false"});
  EXPECT_EQ(c.outboundAddr.toString(), "127.0.0.1:25001");
  EXPECT_EQ(c.inboundAddr.toString(), "0.0.0.0:15008");
}

TEST(ConfigErrors, EveryMessage) {
  const Env d = kDedicated;
  using E = ConfigErrc;
  expectError({}, with(d, {{"HTTP2_FRAME_SIZE", "abc"}}), E::kInvalidValue,
              "HTTP2_FRAME_SIZE=abc: not a byte count");
  expectError({"--http2-frame-size=abc"}, d, E::kInvalidValue,
              "--http2-frame-size=abc: not a byte count");
  expectError({}, with(d, {{"HTTP2_FRAME_SIZE", "16383"}}), E::kInvalidValue,
              "HTTP2_FRAME_SIZE=16383: must be between 16384 and 16777215 bytes");
  expectError({}, with(d, {{"HTTP2_FRAME_SIZE", "16777216"}}), E::kInvalidValue,
              "HTTP2_FRAME_SIZE=16777216: must be between 16384 and 16777215 bytes");
  expectError({}, with(d, {{"HTTP2_STREAM_WINDOW_SIZE", "2147483648"}}), E::kInvalidValue,
              "HTTP2_STREAM_WINDOW_SIZE=2147483648: must be between 1 and 2147483647 bytes");
  expectError({}, with(d, {{"HTTP2_CONNECTION_WINDOW_SIZE", "-1"}}), E::kInvalidValue,
              "HTTP2_CONNECTION_WINDOW_SIZE=-1: not a byte count");
  expectError({}, with(d, {{"HTTP2_CONNECTION_WINDOW_SIZE", "1000"}}), E::kConflict,
              "HTTP2_CONNECTION_WINDOW_SIZE (1000) must be at least HTTP2_STREAM_WINDOW_SIZE "
              "(4194304)");
  expectError({}, with(d, {{"POOL_MAX_STREAMS_PER_CONNECTION", "0"}}), E::kInvalidValue,
              "POOL_MAX_STREAMS_PER_CONNECTION=0: must be between 1 and 2147483647");
  expectError({}, with(d, {{"POOL_UNUSED_RELEASE_TIMEOUT", "5 m"}}), E::kInvalidValue,
              "POOL_UNUSED_RELEASE_TIMEOUT=5 m: unknown duration unit ' m' (ns, us, ms, s, m, h, "
              "d)");
  expectError({}, with(d, {{"PROXY_MODE", "shared"}}), E::kUnsupported,
              "PROXY_MODE=shared (in-pod) is not supported yet; use dedicated");
  expectError({}, {}, E::kUnsupported,
              "PROXY_MODE=shared (in-pod) is not supported yet; use dedicated (shared is the "
              "default: set PROXY_MODE=dedicated and PROXY_WORKLOAD_INFO=ns/name/sa)");
  expectError({}, with(d, {{"PROXY_MODE", "sidecar"}}), E::kInvalidValue,
              "PROXY_MODE=sidecar: expected dedicated or shared");
  expectError({}, {{"PROXY_MODE", "dedicated"}}, E::kMissingRequired,
              "PROXY_WORKLOAD_INFO (ns/name/sa) is required in dedicated mode");
  expectError({}, with(d, {{"PROXY_WORKLOAD_INFO", "a/b"}}), E::kInvalidValue,
              "PROXY_WORKLOAD_INFO=a/b: expected ns/name/sa");
  expectError({}, with(d, {{"PROXY_WORKLOAD_INFO", "a/b/c/d"}}), E::kInvalidValue,
              "PROXY_WORKLOAD_INFO=a/b/c/d: expected ns/name/sa");
  expectError({}, with(d, {{"PROXY_WORKLOAD_INFO", "Prod/b/c"}}), E::kInvalidValue,
              "PROXY_WORKLOAD_INFO=Prod/b/c: namespace 'Prod' is not a DNS-1123 label");
  expectError({}, with(d, {{"PROXY_WORKLOAD_INFO", "a//c"}}), E::kInvalidValue,
              "PROXY_WORKLOAD_INFO=a//c: name '' is not a DNS-1123 subdomain");
  expectError({}, with(d, {{"PROXY_WORKLOAD_INFO", "a/b/c_d"}}), E::kInvalidValue,
              "PROXY_WORKLOAD_INFO=a/b/c_d: service account 'c_d' is not a DNS-1123 subdomain");
  expectError({}, with(d, {{"TRUST_DOMAIN", "Bad Domain"}}), E::kInvalidValue,
              "TRUST_DOMAIN=Bad Domain: not a SPIFFE trust domain (lowercase letters, digits, '.', "
              "'-', '_')");
  expectError({}, with(d, {{"CLUSTER_ID", ""}}), E::kInvalidValue,
              "CLUSTER_ID=: must not be empty");
  expectError({}, with(d, {{"CLUSTER_DOMAIN", "-x"}}), E::kInvalidValue,
              "CLUSTER_DOMAIN=-x: not a DNS domain");
  expectError({}, with(d, {{"XDS_ADDRESS", "ftp://x"}}), E::kInvalidValue,
              "XDS_ADDRESS=ftp://x: scheme must be https or http");
  expectError({}, with(d, {{"CA_ADDRESS", "https://:15012"}}), E::kInvalidValue,
              "CA_ADDRESS=https://:15012: no host");
  expectError({}, with(d, {{"CA_ADDRESS", "istiod:99999"}}), E::kInvalidValue,
              "CA_ADDRESS=istiod:99999: bad port");
  expectError({}, with(d, {{"SECRET_TTL", "0s"}}), E::kInvalidValue,
              "SECRET_TTL=0s: must be between 1s and 3650d");
  expectError({}, with(d, {{"ZTUNNEL_WORKER_THREADS", "abc"}}), E::kInvalidValue,
              "ZTUNNEL_WORKER_THREADS=abc: expected N, N% or 0 (all CPUs)");
  expectError({}, with(d, {{"ZTUNNEL_WORKER_THREADS", "150%"}}), E::kInvalidValue,
              "ZTUNNEL_WORKER_THREADS=150%: percentage must be more than 0 and at most 100");
  expectError({}, with(d, {{"ZTUNNEL_WORKER_THREADS", "0%"}}), E::kInvalidValue,
              "ZTUNNEL_WORKER_THREADS=0%: percentage must be more than 0 and at most 100");
  expectError({}, with(d, {{"ZTUNNEL_WORKER_THREADS", "5000"}}), E::kInvalidValue,
              "ZTUNNEL_WORKER_THREADS=5000: at most 1024 worker threads");
  expectError({}, with(d, {{"ZTUNNEL_CPU_LIMIT", "two"}}), E::kInvalidValue,
              "ZTUNNEL_CPU_LIMIT=two: not a CPU quantity (\"2\", \"1.5\", \"500m\")");
  expectError({}, with(d, {{"ZTUNNEL_CPU_LIMIT", "0"}}), E::kInvalidValue,
              "ZTUNNEL_CPU_LIMIT=0: must be more than 0 and at most 4096 CPUs");
  expectError({}, with(d, {{"KEEPALIVE_TIME", "abc"}}), E::kInvalidValue,
              "KEEPALIVE_TIME=abc: not a duration (e.g. 250ms, 10s, 5m, 1h30m)");
  expectError({}, with(d, {{"KEEPALIVE_TIME", "5x"}}), E::kInvalidValue,
              "KEEPALIVE_TIME=5x: unknown duration unit 'x' (ns, us, ms, s, m, h, d)");
  expectError({}, with(d, {{"KEEPALIVE_INTERVAL", "500ms"}}), E::kInvalidValue,
              "KEEPALIVE_INTERVAL=500ms: must be between 1s and 32767s");
  expectError({}, with(d, {{"KEEPALIVE_RETRIES", "0"}}), E::kInvalidValue,
              "KEEPALIVE_RETRIES=0: must be between 1 and 127");
  expectError({}, with(d, {{"KEEPALIVE_RETRIES", "x"}}), E::kInvalidValue,
              "KEEPALIVE_RETRIES=x: not a probe count");
  expectError({}, with(d, {{"TLS12_ENABLED", "yes"}}), E::kInvalidValue,
              "TLS12_ENABLED=yes: not a boolean (true/false/1/0)");
  expectError({}, with(d, {{"CONNECTION_TERMINATION_DEADLINE", "-1s"}}), E::kInvalidValue,
              "CONNECTION_TERMINATION_DEADLINE=-1s: not a duration (e.g. 250ms, 10s, 5m, 1h30m)");
  expectError({}, with(d, {{"TERMINATION_GRACE_PERIOD_SECONDS", "30s"}}), E::kInvalidValue,
              "TERMINATION_GRACE_PERIOD_SECONDS=30s: not a whole number of seconds (0..86400)");
  expectError({}, with(d, {{"PACKET_MARK", "0xzz"}}), E::kInvalidValue,
              "PACKET_MARK=0xzz: not a mark");
  expectError({}, with(d, {{"PACKET_MARK", "4294967296"}}), E::kInvalidValue,
              "PACKET_MARK=4294967296: must be between 0 and 4294967295");
  expectError({}, with(d, {{"ENABLE_ORIG_SRC", "maybe"}}), E::kInvalidValue,
              "ENABLE_ORIG_SRC=maybe: expected auto, true or false");
  expectError({}, with(d, {{"LOG_FORMAT", "xml"}}), E::kInvalidValue,
              "LOG_FORMAT=xml: expected text or json");
  expectError({}, with(d, {{"RUST_LOG", "verbose"}}), E::kInvalidValue,
              "RUST_LOG=verbose: unknown log level 'verbose' (trace, debug, info, warn, error, "
              "off)");
  expectError({}, with(d, {{"RUST_LOG", "info,=debug"}}), E::kInvalidValue,
              "RUST_LOG=info,=debug: '=debug' has no target");
  expectError({"--outbound-addr=localhost:15001"}, d, E::kInvalidValue,
              "--outbound-addr=localhost:15001: not an address:port (\"0.0.0.0:15001\", "
              "\"[::]:15001\")");
  expectError({"--inbound-addr=[::1]:15008"}, with(d, {{"IPV6_ENABLED", "false"}}), E::kConflict,
              "--inbound-addr=[::1]:15008 is IPv6 but IPV6_ENABLED=false");
  // Flags and commands.
  expectError({"--xds-adress=x"}, d, E::kUnknownFlag, "--xds-adress (did you mean --xds-address?)");
  expectError({"--frobnicate"}, d, E::kUnknownFlag, "--frobnicate (see `ztunnel --help`)");
  expectError({"--XDS_ADDRESS=x"}, d, E::kUnknownFlag,
              "--XDS_ADDRESS (the flag for XDS_ADDRESS is --xds-address)");
  expectError({"-x"}, d, E::kUnknownFlag, "-x (flags are --long-names; see `ztunnel --help`)");
  expectError({"--xds-address"}, d, E::kMissingValue, "--xds-address needs a value (URL)");
  expectError({"proxy", "extra"}, d, E::kUnexpectedArgument, "'extra'");
  expectError({"--enable-socks5", "false"}, d, E::kUnexpectedArgument,
              "'false' (boolean flags take --flag=false)");
  expectError({"frob"}, d, E::kUnknownCommand,
              "'frob' (commands: proxy, version, help, certs, redirect)");
  expectError({"help", "frob"}, d, E::kUnknownCommand,
              "'frob' (commands: proxy, version, help, certs, redirect)");
  expectError({"version", "x"}, d, E::kUnexpectedArgument, "'x'");
  expectError({"redirect"}, d, E::kUnexpectedArgument, "redirect needs install or remove");
  expectError({"redirect", "apply"}, d, E::kUnexpectedArgument,
              "redirect needs install or remove, not 'apply'");
  expectError({"redirect", "install", "--xds-address=x"}, d, E::kUnknownFlag,
              "--xds-address (see `ztunnel help redirect`)");
  expectError({"redirect", "install", "--outbound-port=0"}, d, E::kInvalidValue,
              "--outbound-port=0: must be between 1 and 65535");
  expectError({"redirect", "install", "--outbound-port=15006"}, d, E::kInvalidValue,
              "redirect: ports must be distinct (outbound 15006, inbound plaintext 15006, hbone "
              "15008)");
  expectError({"redirect", "install"}, with(d, {{"PACKET_MARK", "0x1539"}}), E::kInvalidValue,
              "redirect: packet mark 0x1539 must be non-zero and within mask 0xfff");
}

TEST(ConfigErrors, MessageNamesCategory) {
  auto c = load({}, with(kDedicated, {{"HTTP2_FRAME_SIZE", "abc"}}));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message(), "config: invalid value: HTTP2_FRAME_SIZE=abc: not a byte count");
}

TEST(WorkerThreads, Resolution) {
  struct Case {
    std::string spec;
    unsigned cpus;
    unsigned want;
  };
  for (const auto& tc : std::vector<Case>{{"", 4, 4},
                                          {"", 0, 1},
                                          {"3", 4, 3},
                                          {"16", 2, 16},
                                          {"0", 8, 8},
                                          {"50%", 4, 2},
                                          {"30%", 4, 2},  // ceil(1.2)
                                          {"25%", 2, 1},
                                          {"1%", 1, 1},
                                          {"100%", 8, 8},
                                          {"12.5%", 16, 2}}) {
    SCOPED_TRACE(tc.spec + " of " + std::to_string(tc.cpus));
    auto n = resolveWorkerThreads(tc.spec, tc.cpus);
    ASSERT_TRUE(n) << n.error().message();
    EXPECT_EQ(*n, tc.want);
  }
  EXPECT_FALSE(resolveWorkerThreads("-1", 4));
  EXPECT_FALSE(resolveWorkerThreads("%", 4));
  EXPECT_FALSE(resolveWorkerThreads("2 ", 4));
}

TEST(WorkerThreads, CpuLimitAndInjectedCount) {
  EXPECT_EQ(mustLoad({}, kDedicated, 6).workerThreads, 6u);
  EXPECT_EQ(mustLoad({"--worker-threads=50%"}, kDedicated, 6).workerThreads, 3u);
  EXPECT_EQ(mustLoad({"--worker-threads=0", "--cpu-limit=3"}, kDedicated, 64).workerThreads, 3u);
  EXPECT_EQ(mustLoad({}, with(kDedicated, {{"ZTUNNEL_CPU_LIMIT", "500m"}}), 64).workerThreads, 1u);
  // 0 = detect: at least one.
  EXPECT_GE(mustLoad({}, kDedicated, 0).workerThreads, 1u);
}

TEST(ParseDuration, GoAndZtunnelForms) {
  struct Case {
    std::string text;
    Duration want;
  };
  for (const auto& tc : std::vector<Case>{{"250ms", 250ms},
                                          {"10s", 10s},
                                          {"5m", 5min},
                                          {"1h30m", 90min},
                                          {"1.5h", 90min},
                                          {"2h45m30.5s", 2h + 45min + 30500ms},
                                          {"90", 90s},
                                          {"0.5", 500ms},
                                          {"0", Duration::zero()},
                                          {"1d", 24h},
                                          {"100us", 100us},
                                          {"7\xc2\xb5s", 7us},
                                          {"10ns", 10ns}}) {
    SCOPED_TRACE(tc.text);
    auto d = parseDuration(tc.text);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(*d, tc.want);
  }
  for (std::string bad : {"", "abc", "5x", "-5s", "1h30", "s", "1..5s", "5 s", "1e3s"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(parseDuration(bad));
  }
  EXPECT_FALSE(parseDuration("999999999999h"));
}

TEST(ParseBool, AcceptedForms) {
  for (std::string t : {"true", "TRUE", "True", "1"}) {
    EXPECT_EQ(parseBool(t), true) << t;
  }
  for (std::string f : {"false", "FALSE", "False", "0"}) {
    EXPECT_EQ(parseBool(f), false) << f;
  }
  for (std::string bad : {"", "yes", "no", "on", "2", " true"}) {
    EXPECT_FALSE(parseBool(bad)) << bad;
  }
}

TEST(ParseByteCount, IntegersOnly) {
  EXPECT_EQ(parseByteCount("0"), 0u);
  EXPECT_EQ(parseByteCount("1048576"), 1048576u);
  EXPECT_FALSE(parseByteCount("1MiB"));
  EXPECT_FALSE(parseByteCount("-1"));
  EXPECT_FALSE(parseByteCount("99999999999999999999999"));
}

TEST(Commands, VersionAndHelpIgnoreBrokenEnvironment) {
  Env broken = {{"HTTP2_FRAME_SIZE", "abc"}, {"PROXY_MODE", "shared"}};
  EXPECT_TRUE(std::holds_alternative<VersionCommand>(mustLoad({"version"}, broken).command));
  for (auto args : std::vector<std::vector<std::string>>{{"help"},
                                                         {"--help"},
                                                         {"-h"},
                                                         {"proxy", "--help"},
                                                         {"help", "proxy"},
                                                         {"--xds-address=x", "-h"},
                                                         {"help", "--help"}}) {
    Config c = mustLoad(args, broken);
    auto* help = std::get_if<HelpCommand>(&c.command);
    ASSERT_NE(help, nullptr) << args[0];
    EXPECT_EQ(help->text, helpText());
  }
  for (auto args : std::vector<std::vector<std::string>>{
           {"help", "redirect"}, {"redirect", "--help"}, {"redirect", "install", "-h"}}) {
    Config c = mustLoad(args, broken);
    ASSERT_TRUE(std::holds_alternative<HelpCommand>(c.command));
    EXPECT_EQ(std::get<HelpCommand>(c.command).text, redirectHelpText());
  }
  // The certs tool answers --help itself (app/certs_command.h).
  Config c = mustLoad({"certs", "--help"}, broken);
  EXPECT_EQ(std::get<CertsCommand>(c.command).args, std::vector<std::string>{"--help"});
  EXPECT_EQ(mustLoad({"help", "certs"}, broken).command, Command{HelpCommand{certsHelpText()}});
}

TEST(Commands, CertsPassesItsArgumentsThroughUntouched) {
  // The certs tool has its own flags; neither proxy flags nor the environment apply to it.
  Env broken = {{"HTTP2_FRAME_SIZE", "abc"}, {"PROXY_MODE", "shared"}};
  Config c = mustLoad({"certs", "issue", "--ca", "ca", "--out", "dir"}, broken);
  auto* certs = std::get_if<CertsCommand>(&c.command);
  ASSERT_NE(certs, nullptr);
  EXPECT_EQ(certs->args, (std::vector<std::string>{"issue", "--ca", "ca", "--out", "dir"}));
}

TEST(Commands, RedirectInstallAndRemove) {
  Config c = mustLoad({"redirect", "install"}, {});
  auto* r = std::get_if<RedirectCommand>(&c.command);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->options, redirect::RedirectOptions{});

  c = mustLoad({"redirect", "remove", "--outbound-port=25001", "--inbound-plaintext-port", "25006",
                "--inbound-port=25008", "--conn-mark=0x222", "--mark-mask=0xffff",
                "--route-table=200", "--rule-priority=32000", "--ipv6-enabled=false", "--dry-run"},
               {{"PACKET_MARK", "0x540"}});
  r = std::get_if<RedirectCommand>(&c.command);
  ASSERT_NE(r, nullptr);
  redirect::RedirectOptions want;
  want.action = redirect::Action::kRemove;
  want.outboundPort = 25001;
  want.inboundPlaintextPort = 25006;
  want.inboundHbonePort = 25008;
  want.packetMark = 0x540;
  want.connMark = 0x222;
  want.markMask = 0xffff;
  want.routeTable = 200;
  want.rulePriority = 32000;
  want.ipv6 = false;
  want.dryRun = true;
  EXPECT_EQ(r->options, want);
  // IPV6_ENABLED from the environment applies, the flag wins.
  c = mustLoad({"redirect", "install"}, {{"IPV6_ENABLED", "false"}});
  EXPECT_FALSE(std::get<RedirectCommand>(c.command).options.ipv6);
  c = mustLoad({"redirect", "install", "--ipv6-enabled"}, {{"IPV6_ENABLED", "false"}});
  EXPECT_TRUE(std::get<RedirectCommand>(c.command).options.ipv6);
}

TEST(Help, ListsEveryOptionWithEnvAndDefault) {
  const std::string help = helpText();
  for (const auto* list : {&proxyOptions(), &redirectOptions()}) {
    for (const auto& o : *list) {
      SCOPED_TRACE(std::string(o.flag));
      EXPECT_NE(help.find("  " + std::string(o.flag) + (o.isBool ? "[" : " ")), std::string::npos);
      if (!o.env.empty()) {
        EXPECT_NE(help.find("env " + std::string(o.env)), std::string::npos);
      }
      EXPECT_FALSE(o.defaultValue.empty());
      EXPECT_FALSE(o.meaning.empty());
      // Defaults are printed verbatim (they may wrap only at spaces, so check the first word).
      std::string firstWord(o.defaultValue.substr(0, o.defaultValue.find(' ')));
      EXPECT_NE(help.find("default: " + firstWord), std::string::npos);
    }
  }
  EXPECT_NE(help.find("ISTIO_META_CLUSTER_ID wins"), std::string::npos);
  for (std::string_view line_start :
       {"ztunnel version", "ztunnel help", "ztunnel certs", "ztunnel redirect install|remove"}) {
    EXPECT_NE(help.find(line_start), std::string::npos) << line_start;
  }
  // No line wider than 100 columns.
  size_t start = 0;
  while (start < help.size()) {
    size_t nl = help.find('\n', start);
    EXPECT_LE(nl - start, 100u) << help.substr(start, nl - start);
    start = nl + 1;
  }
}

TEST(Help, EveryConfigFieldHasAFlag) {
  // Config field -> flag. A new Config field must get an option (and a line here).
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"proxyMode", "--proxy-mode"},
      {"workloadInfo", "--workload-info"},
      {"trustDomain", "--trust-domain"},
      {"clusterId", "--cluster-id"},
      {"clusterDomain", "--cluster-domain"},
      {"network", "--network"},
      {"nodeName", "--node-name"},
      {"enableProxy", "--enable-proxy"},
      {"xdsAddress", "--xds-address"},
      {"caAddress", "--ca-address"},
      {"xdsRootCa", "--xds-root-ca"},
      {"caRootCa", "--ca-root-ca"},
      {"altXdsHostname", "--alt-xds-hostname"},
      {"altCaHostname", "--alt-ca-hostname"},
      {"authToken", "--auth-token"},
      {"secretTtl", "--secret-ttl"},
      {"localXdsPath", "--local-xds-path"},
      {"localXdsInline", "--local-xds"},
      {"certDir", "--cert-dir"},
      {"workerThreads", "--worker-threads"},
      {"cpuCount", "--cpu-limit"},
      {"poolMaxStreamsPerConnection", "--pool-max-streams-per-connection"},
      {"poolUnusedReleaseTimeout", "--pool-unused-release-timeout"},
      {"http2StreamWindowSize", "--http2-stream-window-size"},
      {"http2ConnectionWindowSize", "--http2-connection-window-size"},
      {"http2FrameSize", "--http2-frame-size"},
      {"enableSocks5", "--enable-socks5"},
      {"tls12Enabled", "--tls12-enabled"},
      {"keepaliveEnabled", "--keepalive-enabled"},
      {"keepaliveTime", "--keepalive-time"},
      {"keepaliveInterval", "--keepalive-interval"},
      {"keepaliveRetries", "--keepalive-retries"},
      {"userTimeoutEnabled", "--user-timeout-enabled"},
      {"selfTerminationDeadline", "--connection-termination-deadline"},
      {"selfTerminationDeadline", "--termination-grace-period-seconds"},
      {"packetMark", "--packet-mark"},
      {"enableOrigSrc", "--enable-orig-src"},
      {"ipv6Enabled", "--ipv6-enabled"},
      {"outboundAddr", "--outbound-addr"},
      {"inboundAddr", "--inbound-addr"},
      {"inboundPlaintextAddr", "--inbound-plaintext-addr"},
      {"socks5Addr", "--socks5-addr"},
      {"adminAddr", "--admin-addr"},
      {"statsAddr", "--stats-addr"},
      {"readinessAddr", "--readiness-addr"},
      {"logFormat", "--log-format"},
      {"logSpec", "--log"},
  };
  const std::string help = helpText();
  for (const auto& [field, flag] : fields) {
    bool found = false;
    for (const auto& o : proxyOptions()) {
      found = found || o.flag == flag;
    }
    EXPECT_TRUE(found) << field << " -> " << flag;
    EXPECT_NE(help.find("  " + flag), std::string::npos) << flag;
  }
  EXPECT_EQ(proxyOptions().size(), fields.size()) << "an option without a Config field line";
}

// Every documented option really does something, and the flag and the variable do the same thing.
TEST(Help, EveryOptionsExampleChangesTheConfigTheSameWayByFlagAndByEnv) {
  auto loadOpts = [](std::vector<std::string> args, const Env& env) {
    return loadProxyOptions(args, lookup(env), 2);
  };
  const Config base = *loadOpts({}, {});
  for (const auto& o : proxyOptions()) {
    SCOPED_TRACE(std::string(o.flag));
    auto byFlag = loadOpts({std::string(o.flag) + "=" + std::string(o.example)}, {});
    ASSERT_TRUE(byFlag) << byFlag.error().message();
    Config a = *byFlag;
    a.warnings.clear();
    Config b = base;
    b.warnings.clear();
    EXPECT_FALSE(a == b) << "example " << o.example << " changes nothing";
    if (!o.env.empty()) {
      auto byEnv = loadOpts({}, {{std::string(o.env), std::string(o.example)}});
      ASSERT_TRUE(byEnv) << byEnv.error().message();
      EXPECT_TRUE(*byEnv == *byFlag) << o.env;
    }
  }
  const Config rbase = mustLoad({"redirect", "install"}, {});
  for (const auto& o : redirectOptions()) {
    SCOPED_TRACE(std::string(o.flag));
    auto byFlag =
        load({"redirect", "install", std::string(o.flag) + "=" + std::string(o.example)}, {});
    ASSERT_TRUE(byFlag) << byFlag.error().message();
    EXPECT_FALSE(*byFlag == rbase) << "example " << o.example << " changes nothing";
    if (!o.env.empty()) {
      auto byEnv = load({"redirect", "install"}, {{std::string(o.env), std::string(o.example)}});
      ASSERT_TRUE(byEnv) << byEnv.error().message();
      EXPECT_TRUE(*byEnv == *byFlag) << o.env;
    }
  }
}

TEST(ProcessEnv, ReadsTheEnvironment) {
  ::setenv("ZT_CONFIG_TEST_VAR", "v1", 1);
  auto env = processEnv();
  EXPECT_EQ(env("ZT_CONFIG_TEST_VAR"), "v1");
  ::unsetenv("ZT_CONFIG_TEST_VAR");
  EXPECT_EQ(env("ZT_CONFIG_TEST_VAR"), std::nullopt);
  const char* argv[] = {"ztunnel", "version"};
  auto c = loadConfig(2, argv, env);
  ASSERT_TRUE(c);
  EXPECT_TRUE(std::holds_alternative<VersionCommand>(c->command));
}

}  // namespace
}  // namespace zt::app
