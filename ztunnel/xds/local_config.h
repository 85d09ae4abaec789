#pragma once

// Local (file) configuration: the LOCAL_XDS_PATH YAML of spec §12, the same state xDS carries,
// for development, tests and hosts without a control plane.
//
// Shape (keys camelCase; unknown keys, duplicate keys, wrong types and bad values are errors):
//
//   workloads:            # optional list
//   - uid: ...            # required; unique
//     name: ...           # required
//     namespace: ...      # required
//     serviceAccount, trustDomain, network, node, hostname, workloadName, canonicalName,
//     canonicalRevision, clusterId: strings
//     workloadIps: ["10.0.0.1", "fd00::1"]
//     protocol: HBONE | TCP                           (default TCP, i.e. TunnelProtocol NONE)
//     networkMode: Standard | HostNetwork
//     status: Healthy | Unhealthy
//     workloadType: deployment | cronjob | pod | job
//     nativeTunnel: bool
//     applicationTunnel: {protocol: NONE | PROXY, port: int}
//     authorizationPolicies: ["ns/name", ...]
//     locality: {region, zone, subzone}
//     waypoint / networkGateway: {destination: <addr>, hboneMtlsPort: int (default 15008)}
//         <addr> = {network: "", address: "10.0.0.9"} | {namespace: ns, hostname: host}
//     capacity: int (default 1)
//     services: {"ns/hostname": {servicePort: targetPort, ...}, ...}
//   services:             # optional list
//   - name, namespace, hostname   # required; "namespace/hostname" unique
//     vips: ["network/ip", "/10.0.0.1", "/10.1.0.0/16"]   (network may be empty; CIDR allowed)
//     ports: {servicePort: targetPort}
//     subjectAltNames: [string]
//     waypoint: <as above>
//     weightedWaypoints: [{destination: <addr>, hboneMtlsPort: int, weight: int}]  (extension)
//     loadBalancer: {routingPreferences: [Region|Zone|Subzone|Node|Cluster|Network],
//                    mode: Standard|Strict|Failover|Passthrough, healthPolicy:
//                    OnlyHealthy|AllowAll}
//     ipFamilies: Automatic | IPv4Only | IPv6Only | Dual   (also IPv4 / IPv6)
//     canonical: bool
//     visibility: Public | Namespace                        (extension)
//   policies:             # optional list
//   - name, namespace     # required; "namespace/name" unique
//     scope: Global | Namespace | WorkloadSelector         (required)
//     action: Allow | Deny                                 (required)
//     dryRun: bool
//     rules: [[[ Match, ... ], ... ], ... ]   rules (OR) of clauses (AND) of matches (OR)
//   Match keys: namespaces, notNamespaces, principals, notPrincipals (lists of StringMatch),
//     serviceAccounts, notServiceAccounts (lists of {namespace, serviceAccount}), sourceIps,
//     notSourceIps, destinationIps, notDestinationIps (CIDR or IP strings), destinationPorts,
//     notDestinationPorts (integers). StringMatch: {Exact: s} | {Prefix: s} | {Suffix: s} |
//     {Presence: []} (Presence accepts [], {} or null).
//
// Integers and booleans must be plain YAML scalars (a quoted "80" value is a type error; quoted
// map keys are accepted). A key present with a null value counts as absent.
//
// Errors name the source, the line:column (1-based) and the key path, e.g.
//   local.yaml:12:5: workloads[0].workloadIps[1]: "10.0.0.300" is not an IP address
// and are returned as XdsErrc::kInvalidConfig with that text as the detail.
//
// Threads: parseLocalConfig/buildState are pure and may run on any thread. LocalConfigWatcher is
// single-threaded: create it and call all its methods on the control thread.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/result.h"
#include "ztunnel/core/unique_fd.h"
#include "ztunnel/state/policy.h"
#include "ztunnel/state/proxy_state.h"
#include "ztunnel/state/service.h"
#include "ztunnel/state/workload.h"

namespace zt::xds {

enum class XdsErrc {
  kInvalidConfig = 1,  // the configuration text is not valid (detail says where and why)
  kIo,                 // reading the configuration failed (see sysErrno)
};
const ErrorCategory& errorCategory(XdsErrc) noexcept;

// The parsed file, as state values. Workloads whose YAML had no clusterId carry an empty one
// (buildState fills StateOptions::clusterId); every other default is already applied.
struct LocalConfig {
  std::vector<state::Workload> workloads;
  std::vector<state::Service> services;
  std::vector<state::Authorization> policies;
};

// Bounds on the work one document may cause.
struct ParseLimits {
  // YAML nodes visited. yaml-cpp shares aliased nodes, so an alias "billion laughs" document is
  // small in memory but would be walked exponentially; past this the parse fails ("document too
  // large"). The default admits ~10,000 policies x 10 rules with room to spare.
  size_t maxNodes = 4'000'000;
};

// Parses YAML text. `sourceName` prefixes error messages (usually the file path).
Result<LocalConfig> parseLocalConfig(std::string_view yamlText, std::string_view sourceName,
                                     const ParseLimits& limits = {});

// Reads and parses a file (errors: kIo, kInvalidConfig).
Result<LocalConfig> loadLocalConfigFile(const std::string& path);

// Builds the immutable snapshot (with `version`) from a parsed config.
Result<std::shared_ptr<const state::ProxyState>> buildState(const LocalConfig& config,
                                                            const state::StateOptions& options,
                                                            uint64_t version = 0);

// Watches the LOCAL_XDS_PATH file and rebuilds the state when it changes.
//
// Mechanism: inotify on the file's *directory* (IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE,
// IN_DELETE, IN_MOVED_FROM, IN_ATTRIB), because editors replace files by rename and Kubernetes
// ConfigMap volumes swap a `..data` symlink — neither produces an event on the file itself. Any
// event in the directory makes the watcher read the path (following symlinks) and re-parse it
// if its bytes differ from the last attempt. checkNow() is the polling variant: it stat()s the
// path and reads it only when (device, inode, size, mtime) changed; call it about once a second
// as a safety net (it also covers symlink targets in other directories), or instead of the fd.
//
// On a successful reload the callback receives the new snapshot (the app publishes it to its
// StateStore); versions count up from 1. On failure the error (naming key path and line) is
// logged at ERROR, kept in lastError(), and no callback runs: the last good state stays current.
// The same broken content is reported once, not on every event. Writers should replace the file
// atomically (write a temporary file, rename it over): an in-place rewrite can be read half
// written, and a truncated file that happens to be valid YAML (e.g. empty) would be published.
//
// Threads: one thread (the control thread); the callback runs synchronously inside loadNow(),
// handleEvents() or checkNow().
class LocalConfigWatcher {
 public:
  using Callback = std::function<void(std::shared_ptr<const state::ProxyState>)>;

  // Sets up the watch (the directory must exist). Does not read the file yet.
  static Result<std::unique_ptr<LocalConfigWatcher>> create(std::string path,
                                                            state::StateOptions options,
                                                            Callback onState);

  LocalConfigWatcher(const LocalConfigWatcher&) = delete;
  LocalConfigWatcher& operator=(const LocalConfigWatcher&) = delete;

  // Reads, parses and builds now (for start-up, where a bad file is fatal). On success calls the
  // callback, even when the content did not change; on failure returns the error.
  Status loadNow();

  // The inotify descriptor: wait for POLLIN (poll/epoll/io_uring) on the control loop, then call
  // handleEvents().
  int fd() const { return inotify_.get(); }

  // Drains pending inotify events (non-blocking) and reloads if the file changed.
  void handleEvents();

  // Reloads if stat() says the file changed since the last attempt.
  void checkNow();

  // The error of the last failed reload since the last good one, or nullopt.
  const std::optional<Error>& lastError() const { return lastError_; }
  // Number of successful loads (== version of the last published snapshot).
  uint64_t loads() const { return version_; }
  const std::string& path() const { return path_; }

 private:
  struct FileSignature {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtimeNs = -1;
    friend bool operator==(const FileSignature&, const FileSignature&) = default;
  };

  LocalConfigWatcher(std::string path, state::StateOptions options, Callback onState,
                     UniqueFd inotify);
  // Reads the file; parses and publishes when its bytes differ from the last attempt (or always
  // when `force`). Returns the error of a failed attempt.
  Status reload(bool force);
  std::optional<FileSignature> signature() const;
  void report(Error error);

  std::string path_;
  state::StateOptions options_;
  Callback onState_;
  UniqueFd inotify_;
  std::optional<FileSignature> lastSignature_;
  std::optional<std::string> lastContent_;  // bytes of the last attempt, good or bad
  std::optional<Error> lastError_;
  uint64_t version_ = 0;
};

}  // namespace zt::xds
