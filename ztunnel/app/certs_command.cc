#include "ztunnel/app/certs_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "ztunnel/app/config.h"
#include "ztunnel/identity/file_certs.h"
#include "ztunnel/tls/cert_builder.h"
#include "ztunnel/tls/certificate.h"

namespace zt::app {

namespace {

constexpr const char* kRootCertFile = "root-cert.pem";
constexpr const char* kRootKeyFile = "root-key.pem";

int usageError(const std::string& message) {
  std::fprintf(stderr, "ztunnel certs: %s\n\n%s", message.c_str(), certsUsage().c_str());
  return 2;
}

int failure(const std::string& message) {
  std::fprintf(stderr, "ztunnel certs: %s\n", message.c_str());
  return 1;
}

// Writes `content` to dir/name through a temporary file and rename(2).
Status writeAtomically(const std::filesystem::path& dir, const std::string& name,
                       const std::string& content, mode_t mode) {
  std::filesystem::path target = dir / name;
  std::filesystem::path tmp = dir / ("." + name + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return fail(systemError("create " + tmp.string()));
  }
  ::fchmod(fd, mode);  // the umask must not widen a key file's mode
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      Error e = systemError("write " + tmp.string());
      ::close(fd);
      return fail(std::move(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return fail(systemError("sync " + tmp.string()));
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    return fail(systemError("rename to " + target.string()));
  }
  return ok();
}

Result<std::string> readFile(const std::filesystem::path& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return fail(systemError("open " + path.string()));
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    out.append(buf, n);
  }
  std::fclose(f);
  return out;
}

// Parses "--flag value" pairs; every flag must be in `allowed`.
Result<std::map<std::string, std::string>> parseFlags(const std::vector<std::string>& args,
                                                      size_t from,
                                                      std::initializer_list<const char*> allowed) {
  std::map<std::string, std::string> out;
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& flag = args[i];
    bool known = false;
    for (const char* a : allowed) {
      known = known || flag == a;
    }
    if (!known) {
      return fail(ConfigErrc::kUnknownFlag, flag);
    }
    if (i + 1 >= args.size()) {
      return fail(ConfigErrc::kMissingValue, flag);
    }
    out[flag] = args[++i];
  }
  return out;
}

std::string required(const std::map<std::string, std::string>& flags, const char* name,
                     std::string* missing) {
  auto it = flags.find(name);
  if (it == flags.end() || it->second.empty()) {
    if (missing->empty()) {
      *missing = name;
    }
    return {};
  }
  return it->second;
}

Result<std::chrono::seconds> validityOf(const std::map<std::string, std::string>& flags,
                                        std::chrono::seconds fallback) {
  auto it = flags.find("--validity");
  if (it == flags.end()) {
    return fallback;
  }
  auto d = parseDuration(it->second);
  if (!d || *d < std::chrono::minutes(1)) {
    return fail(ConfigErrc::kInvalidValue, "--validity " + it->second +
                                               ": a duration of at least 1m (e.g. 24h, 8760h)");
  }
  return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

std::string formatTime(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&tt));
  return buf;
}

int createRoot(const std::vector<std::string>& args) {
  auto flags = parseFlags(args, 1, {"--trust-domain", "--out", "--validity"});
  if (!flags) {
    return usageError(flags.error().message());
  }
  std::string missing;
  std::string td = required(*flags, "--trust-domain", &missing);
  std::string out = required(*flags, "--out", &missing);
  if (!missing.empty()) {
    return usageError("create-root needs " + missing);
  }
  auto validity = validityOf(*flags, std::chrono::hours(24 * 365 * 10));
  if (!validity) {
    return usageError(validity.error().message());
  }
  if (!tls::Identity::make(td, "ns", "sa").valid()) {
    return usageError("--trust-domain " + td + ": not a valid SPIFFE trust domain");
  }
  auto root = tls::mintRoot(td, *validity);
  if (!root) {
    return failure(root.error().message());
  }
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) {
    return failure("create " + out + ": " + ec.message());
  }
  if (auto st = writeAtomically(out, kRootKeyFile, root->keyPem, 0600); !st) {
    return failure(st.error().message());
  }
  if (auto st = writeAtomically(out, kRootCertFile, root->certPem, 0644); !st) {
    return failure(st.error().message());
  }
  std::printf("created mesh root for trust domain %s in %s (%s, %s)\n", td.c_str(), out.c_str(),
              kRootCertFile, kRootKeyFile);
  return 0;
}

int issue(const std::vector<std::string>& args) {
  auto flags = parseFlags(args, 1, {"--ca", "--namespace", "--service-account", "--trust-domain",
                                    "--out", "--validity"});
  if (!flags) {
    return usageError(flags.error().message());
  }
  std::string missing;
  std::string caDir = required(*flags, "--ca", &missing);
  std::string ns = required(*flags, "--namespace", &missing);
  std::string sa = required(*flags, "--service-account", &missing);
  std::string out = required(*flags, "--out", &missing);
  if (!missing.empty()) {
    return usageError("issue needs " + missing);
  }
  std::string td = flags->count("--trust-domain") ? flags->at("--trust-domain") : "cluster.local";
  tls::Identity id = tls::Identity::make(td, ns, sa);
  if (!id.valid()) {
    return usageError(id.toUri() + " is not a valid SPIFFE identity");
  }
  auto validity = validityOf(*flags, std::chrono::hours(24));
  if (!validity) {
    return usageError(validity.error().message());
  }
  auto caCert = readFile(std::filesystem::path(caDir) / kRootCertFile);
  auto caKey = readFile(std::filesystem::path(caDir) / kRootKeyFile);
  if (!caCert || !caKey) {
    return failure((caCert ? caKey.error() : caCert.error()).message() +
                   " (create one with `ztunnel certs create-root`)");
  }
  tls::WorkloadCertOptions options = tls::workloadCertOptions(id);
  auto now = std::chrono::system_clock::now();
  options.notBefore = now - std::chrono::minutes(1);
  options.notAfter = now + *validity;
  auto leaf = tls::issueWorkload(*caCert, *caKey, options);
  if (!leaf) {
    return failure(leaf.error().message());
  }
  // Check what we are about to write loads exactly as the proxy will load it.
  auto check = tls::Credentials::fromPem({leaf->chainPem, leaf->keyPem, *caCert});
  if (!check) {
    return failure(check.error().message());
  }
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) {
    return failure("create " + out + ": " + ec.message());
  }
  // Key first: a watcher that sees a new chain before its key would refuse the pair anyway.
  for (auto [name, content, mode] :
       {std::tuple{identity::kKeyFile, &leaf->keyPem, mode_t{0600}},
        std::tuple{identity::kCertChainFile, &leaf->chainPem, mode_t{0644}},
        std::tuple{identity::kRootCertFile, &*caCert, mode_t{0644}}}) {
    if (auto st = writeAtomically(out, name, *content, mode); !st) {
      return failure(st.error().message());
    }
  }
  std::printf("issued %s (serial %s, valid until %s) into %s\n", id.toUri().c_str(),
              (*check)->serialHex().c_str(), formatTime((*check)->notAfter()).c_str(),
              out.c_str());
  return 0;
}

int show(const std::vector<std::string>& args) {
  auto flags = parseFlags(args, 1, {"--dir"});
  if (!flags) {
    return usageError(flags.error().message());
  }
  std::string missing;
  std::string dir = required(*flags, "--dir", &missing);
  if (!missing.empty()) {
    return usageError("show needs --dir");
  }
  auto bundle = identity::readCertDir(dir);
  if (!bundle) {
    return failure(bundle.error().message());
  }
  auto creds = tls::Credentials::fromPem(*bundle);
  if (!creds) {
    return failure(creds.error().message());
  }
  std::printf("identity: %s\nserial: %s\nvalid from: %s\nvalid until: %s\nroots: %zu\n",
              (*creds)->identity().toUri().c_str(), (*creds)->serialHex().c_str(),
              formatTime((*creds)->notBefore()).c_str(), formatTime((*creds)->notAfter()).c_str(),
              (*creds)->rootCount());
  return 0;
}

}  // namespace

std::string certsUsage() {
  return "Usage:\n"
         "  ztunnel certs create-root --trust-domain TD --out DIR [--validity DURATION]\n"
         "      mesh root CA: DIR/root-cert.pem, DIR/root-key.pem (default validity 87600h)\n"
         "  ztunnel certs issue --ca DIR --namespace NS --service-account SA --out DIR\n"
         "                      [--trust-domain TD] [--validity DURATION]\n"
         "      workload certificate spiffe://TD/ns/NS/sa/SA (TD default cluster.local, validity\n"
         "      24h) as DIR/cert-chain.pem, DIR/key.pem, DIR/root-cert.pem (for --cert-dir)\n"
         "  ztunnel certs show --dir DIR\n"
         "      identity and validity of the certificate in DIR\n";
}

int runCerts(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::printf("%s", certsUsage().c_str());
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "create-root") {
    return createRoot(args);
  }
  if (args[0] == "issue") {
    return issue(args);
  }
  if (args[0] == "show") {
    return show(args);
  }
  return usageError("unknown action '" + args[0] + "'");
}

}  // namespace zt::app
