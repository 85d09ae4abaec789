#pragma once

// Certificates from files, for standalone use (WORKLOAD_CERT_DIR / --cert-dir): the directory
// holds Istio's file-mounted names
//   cert-chain.pem  leaf first, then intermediates
//   key.pem         the leaf's private key (PKCS#8 or SEC1, unencrypted)
//   root-cert.pem   the mesh trust bundle (one or more roots)
// `ztunnel certs issue` writes exactly these.
//
// CertDirWatcher re-reads the directory when any of the three files changes (size, mtime or inode
// of the file a path resolves to, so editors' rename-replace and Kubernetes' `..data` symlink swaps
// are both seen). A change that does not load (half-written files, a key that does not match the
// chain, an unparseable PEM) is reported once and the previous credentials stay in use; the next
// change is tried again.

#include <sys/types.h>

#include <array>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ztunnel/core/result.h"
#include "ztunnel/identity/workload_tls.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/spiffe.h"

namespace zt::identity {

enum class IdentityErrc {
  kCertDir = 1,       // the certificate directory or one of its files cannot be read
  kWrongIdentity,     // the certificate is for another identity than the proxied workload
};
const ErrorCategory& errorCategory(IdentityErrc) noexcept;

inline constexpr const char* kCertChainFile = "cert-chain.pem";
inline constexpr const char* kKeyFile = "key.pem";
inline constexpr const char* kRootCertFile = "root-cert.pem";

// Reads the three files. Errors name the file.
Result<tls::CertificateBundle> readCertDir(const std::filesystem::path& dir);

class CertDirWatcher {
 public:
  using OnChange = std::function<void(std::shared_ptr<const WorkloadTls>)>;

  // `expected`, when set, is the identity the certificate must carry (dedicated mode's
  // PROXY_WORKLOAD_INFO with TRUST_DOMAIN): a certificate for another identity is refused.
  CertDirWatcher(std::filesystem::path dir, tls::TlsOptions options,
                 std::optional<tls::Identity> expected, OnChange onChange);

  // Loads the directory now. Start-up uses this and fails on error.
  Result<std::shared_ptr<const WorkloadTls>> load();

  // Control thread, e.g. once a second: reloads when a file changed and calls onChange with the
  // new credentials. Returns true if new credentials were published.
  bool poll();

  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtimeNs = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  using Stamps = std::array<FileStamp, 3>;
  Stamps stamp() const;

  std::filesystem::path dir_;
  tls::TlsOptions options_;
  std::optional<tls::Identity> expected_;
  OnChange onChange_;
  Stamps loaded_{};
  Stamps lastFailed_{};
  bool haveFailed_ = false;
};

}  // namespace zt::identity
