#include "ztunnel/tls/certificate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include <cerrno>
#include <cstring>

#include "ztunnel/core/unique_fd.h"
#include "ztunnel/tls/openssl_util.h"
#include "ztunnel/tls/x509_util.h"

namespace zt::tls {

namespace {

std::string serialToHex(X509* cert) {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  OsslPtr<BIGNUM> bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) {
    drainOpenSslErrors();
    return {};
  }
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) {
    drainOpenSslErrors();
    return {};
  }
  std::string out(hex);
  OPENSSL_free(hex);
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> uriSansOf(X509* cert) {
  std::vector<std::string> out;
  int crit = 0;
  OsslPtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
  if (!names) {
    drainOpenSslErrors();
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) {
      continue;
    }
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

Result<Identity> spiffeIdentityOf(X509* cert, size_t* uriSanCount) {
  if (uriSanCount != nullptr) {
    *uriSanCount = 0;
  }
  int crit = 0;
  OsslPtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
  if (!names) {
    drainOpenSslErrors();
    if (crit == -2) {
      return fail(TlsErrc::kPeerIdentityRejected,
                  "certificate has more than one subjectAltName extension");
    }
    if (crit == -1) {
      return fail(TlsErrc::kPeerIdentityRejected,
                  "certificate has no subjectAltName (no SPIFFE URI SAN)");
    }
    return fail(TlsErrc::kPeerIdentityRejected, "certificate subjectAltName cannot be decoded");
  }
  const ASN1_IA5STRING* uri = nullptr;
  size_t count = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_URI) {
      uri = gn->d.uniformResourceIdentifier;
      ++count;
    }
  }
  if (uriSanCount != nullptr) {
    *uriSanCount = count;
  }
  if (count == 0) {
    return fail(TlsErrc::kPeerIdentityRejected, "certificate has no URI SAN (no SPIFFE id)");
  }
  if (count > 1) {
    return fail(TlsErrc::kPeerIdentityRejected,
                "certificate has " + std::to_string(count) +
                    " URI SANs; an X.509-SVID must have exactly one");
  }
  std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                        static_cast<size_t>(ASN1_STRING_length(uri)));
  auto id = Identity::parse(text);
  if (!id) {
    return fail(TlsErrc::kPeerIdentityRejected,
                "certificate URI SAN is not a SPIFFE id: " + id.error().detail());
  }
  return id;
}

Credentials::~Credentials() {
  X509_free(leaf_);
  sk_X509_pop_free(intermediates_, X509_free);
  EVP_PKEY_free(key_);
  X509_STORE_free(store_);
}

Result<std::shared_ptr<const Credentials>> Credentials::fromPem(const CertificateBundle& bundle) {
  constexpr auto kErr = TlsErrc::kInvalidCredentials;
  auto chain = parseCertificatesPem(bundle.certChainPem, "certificate chain", kErr);
  if (!chain) {
    return fail(chain.error());
  }
  auto roots = parseCertificatesPem(bundle.rootCertsPem, "root certificates", kErr);
  if (!roots) {
    return fail(roots.error());
  }
  auto key = parsePrivateKeyPem(bundle.privateKeyPem, kErr);
  if (!key) {
    return fail(key.error());
  }

  std::shared_ptr<Credentials> creds(new Credentials());
  creds->bundle_ = bundle;
  X509* leaf = (*chain)[0].get();

  if (X509_check_private_key(leaf, key->get()) != 1) {
    return fail(opensslError(kErr, "private key does not match the leaf certificate"));
  }
  auto id = spiffeIdentityOf(leaf);
  if (!id) {
    return fail(kErr, "leaf certificate: " + id.error().detail());
  }
  creds->identity_ = std::move(*id);
  if (!asn1TimeToTimePoint(X509_get0_notBefore(leaf), &creds->notBefore_) ||
      !asn1TimeToTimePoint(X509_get0_notAfter(leaf), &creds->notAfter_)) {
    return fail(kErr, "leaf certificate validity dates cannot be decoded");
  }
  creds->serialHex_ = serialToHex(leaf);

  creds->intermediates_ = sk_X509_new_null();
  creds->store_ = X509_STORE_new();
  if (creds->intermediates_ == nullptr || creds->store_ == nullptr) {
    return fail(opensslError(TlsErrc::kInternal, "allocation failed"));
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    if (sk_X509_push(creds->intermediates_, (*chain)[i].get()) == 0) {
      return fail(opensslError(TlsErrc::kInternal, "allocation failed"));
    }
    (void)(*chain)[i].release();
  }
  for (auto& root : *roots) {
    // X509_STORE_add_cert takes its own reference. A duplicate root is not an error.
    if (X509_STORE_add_cert(creds->store_, root.get()) != 1) {
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_REASON(err) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        return fail(opensslError(kErr, "cannot add root certificate to the trust store"));
      }
      drainOpenSslErrors();
    }
    ++creds->rootCount_;
  }
  creds->leaf_ = (*chain)[0].release();
  creds->key_ = key->release();
  return std::shared_ptr<const Credentials>(std::move(creds));
}

Status Credentials::verifyOwnChain(TimePoint at) const {
  OsslPtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store_, leaf_, intermediates_) != 1) {
    return fail(opensslError(TlsErrc::kInternal, "X509_STORE_CTX_init"));
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(at));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    drainOpenSslErrors();
    return fail(TlsErrc::kInvalidCredentials,
                std::string("own certificate chain does not verify against own roots: ") +
                    X509_verify_cert_error_string(err));
  }
  return ok();
}

// ---- files ------------------------------------------------------------------------------------

namespace {

Status writeFileAtomically(const std::filesystem::path& dir, std::string_view name,
                           std::string_view content, mode_t mode) {
  std::string target = (dir / name).string();
  std::string tmpl = (dir / ("." + std::string(name) + ".tmp.XXXXXX")).string();
  // mkstemp creates the file 0600, so key material is never world-readable, even briefly.
  UniqueFd fd(::mkstemp(tmpl.data()));
  if (!fd) {
    return fail(TlsErrc::kFileIo, "create temporary file for " + target, errno);
  }
  auto cleanup = [&](std::string what, int err) {
    ::unlink(tmpl.c_str());
    return fail(TlsErrc::kFileIo, std::move(what) + " " + target, err);
  };
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return cleanup("write", errno);
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), mode) != 0) {
    return cleanup("chmod", errno);
  }
  if (::fsync(fd.get()) != 0) {
    return cleanup("fsync", errno);
  }
  if (::close(fd.release()) != 0) {
    return cleanup("close", errno);
  }
  if (::rename(tmpl.c_str(), target.c_str()) != 0) {
    return cleanup("rename onto", errno);
  }
  return ok();
}

Result<std::string> readFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return fail(TlsErrc::kFileIo, "open " + path.string(), errno);
  }
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(TlsErrc::kFileIo, "read " + path.string(), errno);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    // Certificate bundles are small; refuse to slurp something unexpected.
    if (out.size() > (16u << 20)) {
      return fail(TlsErrc::kFileIo, path.string() + " is larger than 16 MiB");
    }
  }
  return out;
}

}  // namespace

Status writeBundleFiles(const CertificateBundle& bundle, const std::filesystem::path& dir) {
  // The three renames are not one atomic unit: a reader racing with us can pair a new key with an
  // old chain; Credentials::fromPem then fails the key/leaf match and the reader retries.
  ZT_TRY_STATUS(writeFileAtomically(dir, kPrivateKeyFileName, bundle.privateKeyPem, 0600));
  ZT_TRY_STATUS(writeFileAtomically(dir, kCertChainFileName, bundle.certChainPem, 0644));
  ZT_TRY_STATUS(writeFileAtomically(dir, kRootCertFileName, bundle.rootCertsPem, 0644));
  // Make the renames durable.
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) {
    return fail(TlsErrc::kFileIo, "open directory " + dir.string(), errno);
  }
  if (::fsync(dfd.get()) != 0) {
    return fail(TlsErrc::kFileIo, "fsync directory " + dir.string(), errno);
  }
  return ok();
}

Result<CertificateBundle> readBundleFiles(const std::filesystem::path& dir) {
  CertificateBundle bundle;
  auto chain = readFile(dir / kCertChainFileName);
  if (!chain) {
    return fail(chain.error());
  }
  auto key = readFile(dir / kPrivateKeyFileName);
  if (!key) {
    return fail(key.error());
  }
  auto roots = readFile(dir / kRootCertFileName);
  if (!roots) {
    return fail(roots.error());
  }
  bundle.certChainPem = std::move(*chain);
  bundle.privateKeyPem = std::move(*key);
  bundle.rootCertsPem = std::move(*roots);
  return bundle;
}

}  // namespace zt::tls
