#include "ztunnel/identity/file_certs.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "ztunnel/core/log.h"

namespace zt::identity {

namespace {

std::string_view describe(int code) noexcept {
  switch (static_cast<IdentityErrc>(code)) {
    case IdentityErrc::kCertDir:
      return "cannot load certificates";
    case IdentityErrc::kWrongIdentity:
      return "certificate is for another identity";
  }
  return "unknown identity error";
}

Result<std::string> readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(IdentityErrc::kCertDir, path.string(), errno);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return fail(IdentityErrc::kCertDir, path.string() + ": read failed", errno);
  }
  return std::move(text).str();
}

}  // namespace

const ErrorCategory& errorCategory(IdentityErrc) noexcept {
  static constexpr ErrorCategory kCategory{"identity", &describe};
  return kCategory;
}

Result<tls::CertificateBundle> readCertDir(const std::filesystem::path& dir) {
  tls::CertificateBundle bundle;
  auto chain = readFile(dir / kCertChainFile);
  if (!chain) {
    return fail(std::move(chain).error());
  }
  auto key = readFile(dir / kKeyFile);
  if (!key) {
    return fail(std::move(key).error());
  }
  auto roots = readFile(dir / kRootCertFile);
  if (!roots) {
    return fail(std::move(roots).error());
  }
  bundle.certChainPem = std::move(*chain);
  bundle.privateKeyPem = std::move(*key);
  bundle.rootCertsPem = std::move(*roots);
  return bundle;
}

CertDirWatcher::CertDirWatcher(std::filesystem::path dir, tls::TlsOptions options,
                               std::optional<tls::Identity> expected, OnChange onChange)
    : dir_(std::move(dir)),
      options_(options),
      expected_(std::move(expected)),
      onChange_(std::move(onChange)) {}

CertDirWatcher::Stamps CertDirWatcher::stamp() const {
  Stamps out{};
  const char* names[] = {kCertChainFile, kKeyFile, kRootCertFile};
  for (size_t i = 0; i < out.size(); ++i) {
    struct stat st {};
    // stat() follows symlinks: a `..data` swap changes the inode it resolves to.
    if (::stat((dir_ / names[i]).c_str(), &st) == 0) {
      out[i] = FileStamp{st.st_dev, st.st_ino, st.st_size,
                         static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    }
  }
  return out;
}

Result<std::shared_ptr<const WorkloadTls>> CertDirWatcher::load() {
  Stamps before = stamp();
  auto bundle = readCertDir(dir_);
  if (!bundle) {
    return fail(std::move(bundle).error());
  }
  auto credentials = tls::Credentials::fromPem(*bundle);
  if (!credentials) {
    return fail(credentials.error().withContext(dir_.string()));
  }
  if (expected_ && (*credentials)->identity() != *expected_) {
    return fail(IdentityErrc::kWrongIdentity,
                dir_.string() + " holds " + (*credentials)->identity().toUri() +
                    ", expected " + expected_->toUri());
  }
  auto workloadTls = WorkloadTls::make(std::move(*credentials), options_);
  if (!workloadTls) {
    return fail(std::move(workloadTls).error());
  }
  loaded_ = before;
  return workloadTls;
}

bool CertDirWatcher::poll() {
  Stamps now = stamp();
  if (now == loaded_ || (haveFailed_ && now == lastFailed_)) {
    return false;
  }
  auto next = load();
  if (!next) {
    // Report a broken change once; files being rewritten one by one may fix it on the next poll.
    haveFailed_ = true;
    lastFailed_ = now;
    ZT_WARN("certificate reload from {} failed, keeping the current certificate: {}",
            dir_.string(), next.error().message());
    return false;
  }
  haveFailed_ = false;
  ZT_INFO("certificate reloaded from {}: {} serial {} valid until {}", dir_.string(),
          (*next)->credentials->identity().toUri(), (*next)->credentials->serialHex(),
          std::chrono::duration_cast<std::chrono::seconds>(
              (*next)->credentials->notAfter().time_since_epoch())
              .count());
  onChange_(std::move(*next));
  return true;
}

}  // namespace zt::identity
