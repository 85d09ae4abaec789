#include "ztunnel/tls/x509_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <ctime>

namespace zt::tls {

namespace {
// Refuses to prompt for a pass phrase: an encrypted key is a configuration error here.
int noPassphrase(char*, int, int, void*) {
  return 0;
}
}  // namespace

Result<std::vector<X509Ptr>> parseCertificatesPem(std::string_view pem, std::string_view what,
                                                  TlsErrc code) {
  ERR_clear_error();
  BioPtr bio = memoryBio(pem);
  if (!bio) {
    return fail(opensslError(code, std::string(what) + ": cannot read PEM"));
  }
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr));
    if (cert) {
      certs.push_back(std::move(cert));
      continue;
    }
    unsigned long err = ERR_peek_last_error();
    if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
      // End of input (no further PEM block).
      ERR_clear_error();
      break;
    }
    return fail(opensslError(code, std::string(what) + ": malformed certificate PEM"));
  }
  if (certs.empty()) {
    return fail(code, std::string(what) + ": no certificate found");
  }
  return certs;
}

Result<EvpPkeyPtr> parsePrivateKeyPem(std::string_view pem, TlsErrc code) {
  ERR_clear_error();
  BioPtr bio = memoryBio(pem);
  if (!bio) {
    return fail(opensslError(code, "private key: cannot read PEM"));
  }
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr));
  if (!key) {
    return fail(opensslError(code, "private key: no usable unencrypted private key in PEM"));
  }
  return key;
}

std::string certificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    drainOpenSslErrors();
    return {};
  }
  return bioToString(bio.get());
}

std::string privateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    drainOpenSslErrors();
    return {};
  }
  return bioToString(bio.get());
}

bool asn1TimeToTimePoint(const ASN1_TIME* t, std::chrono::system_clock::time_point* out) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    drainOpenSslErrors();
    return false;
  }
  time_t secs = timegm(&tm);
  *out = std::chrono::system_clock::time_point(std::chrono::seconds(secs));
  return true;
}

std::string subjectOneLine(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  if (name == nullptr || X509_NAME_entry_count(name) == 0) {
    return {};
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_ONELINE) < 0) {
    drainOpenSslErrors();
    return {};
  }
  return bioToString(bio.get());
}

}  // namespace zt::tls
