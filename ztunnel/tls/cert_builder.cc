#include "ztunnel/tls/cert_builder.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <array>

#include "ztunnel/tls/openssl_util.h"
#include "ztunnel/tls/x509_util.h"

namespace zt::tls {

namespace {

constexpr auto kErr = TlsErrc::kCertificateIssuance;
using Clock = std::chrono::system_clock;
// Back-date notBefore so a peer whose clock is slightly behind accepts a fresh certificate.
constexpr auto kClockSkew = std::chrono::minutes(1);

Result<EvpPkeyPtr> generateP256Key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    return fail(opensslError(kErr, "generate P-256 key"));
  }
  return key;
}

Status setRandomSerial(X509* x) {
  std::array<unsigned char, 16> buf{};
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    return fail(opensslError(kErr, "RAND_bytes"));
  }
  buf[0] &= 0x7f;  // positive and 16 octets once DER-encoded
  buf[0] |= 0x01;  // ... and never zero (RFC 5280 §4.1.2.2)
  OsslPtr<BIGNUM> bn(BN_bin2bn(buf.data(), static_cast<int>(buf.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)) == nullptr) {
    return fail(opensslError(kErr, "set serial number"));
  }
  return ok();
}

Status setValidity(X509* x, Clock::time_point notBefore, Clock::time_point notAfter) {
  if (notAfter <= notBefore) {
    return fail(kErr, "notAfter must be later than notBefore");
  }
  if (ASN1_TIME_set(X509_getm_notBefore(x), Clock::to_time_t(notBefore)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x), Clock::to_time_t(notAfter)) == nullptr) {
    return fail(opensslError(kErr, "set validity"));
  }
  return ok();
}

// Adds an extension given in OpenSSL's config syntax (only for fixed strings, never for SANs:
// the syntax would interpret commas in a URI).
Status addExtension(X509* subject, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, subject, nullptr, nullptr, 0);
  OsslPtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(subject, ext.get(), -1) != 1) {
    return fail(opensslError(kErr, std::string("add extension ") + OBJ_nid2sn(nid) + "=" + value));
  }
  return ok();
}

Status pushName(GENERAL_NAMES* names, int type, std::string_view value) {
  ASN1_IA5STRING* str = ASN1_IA5STRING_new();
  GENERAL_NAME* gn = GENERAL_NAME_new();
  if (str == nullptr || gn == nullptr ||
      ASN1_STRING_set(str, value.data(), static_cast<int>(value.size())) != 1) {
    ASN1_IA5STRING_free(str);
    GENERAL_NAME_free(gn);
    return fail(opensslError(TlsErrc::kInternal, "allocate GENERAL_NAME"));
  }
  GENERAL_NAME_set0_value(gn, type, str);
  if (sk_GENERAL_NAME_push(names, gn) == 0) {
    GENERAL_NAME_free(gn);
    return fail(opensslError(TlsErrc::kInternal, "allocate GENERAL_NAMES"));
  }
  return ok();
}

Result<OsslPtr<GENERAL_NAMES>> makeSans(const std::vector<std::string>& uris,
                                        const std::vector<std::string>& dns) {
  OsslPtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  if (!names) {
    return fail(opensslError(TlsErrc::kInternal, "allocate GENERAL_NAMES"));
  }
  for (const auto& uri : uris) {
    ZT_TRY_STATUS(pushName(names.get(), GEN_URI, uri));
  }
  for (const auto& name : dns) {
    ZT_TRY_STATUS(pushName(names.get(), GEN_DNS, name));
  }
  return names;
}

Status addNameEntry(X509_NAME* name, const char* field, std::string_view value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return fail(opensslError(kErr, std::string("set subject ") + field));
  }
  return ok();
}

struct Issuer {
  X509Ptr cert;
  EvpPkeyPtr key;
  bool selfSigned = false;
};

Result<Issuer> loadIssuer(std::string_view caCertPem, std::string_view caKeyPem) {
  auto certs = parseCertificatesPem(caCertPem, "CA certificate", kErr);
  if (!certs) {
    return fail(certs.error());
  }
  auto key = parsePrivateKeyPem(caKeyPem, kErr);
  if (!key) {
    return fail(key.error());
  }
  Issuer issuer;
  issuer.cert = std::move((*certs)[0]);
  issuer.key = std::move(*key);
  if (X509_check_private_key(issuer.cert.get(), issuer.key.get()) != 1) {
    return fail(opensslError(kErr, "CA key does not match the CA certificate"));
  }
  issuer.selfSigned = X509_self_signed(issuer.cert.get(), 0) == 1;
  drainOpenSslErrors();
  return issuer;
}

Status sign(X509* x, EVP_PKEY* key) {
  if (X509_sign(x, key, EVP_sha256()) <= 0) {
    return fail(opensslError(kErr, "sign certificate"));
  }
  return ok();
}

Result<X509Ptr> newCertificate() {
  X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1) {
    return fail(opensslError(TlsErrc::kInternal, "X509_new"));
  }
  ZT_TRY_STATUS(setRandomSerial(x.get()));
  return x;
}

Result<X509Ptr> buildLeaf(const Issuer& issuer, EVP_PKEY* subjectKey,
                          const WorkloadCertOptions& o) {
  auto x = newCertificate();
  if (!x) {
    return fail(x.error());
  }
  X509* cert = x->get();
  Clock::time_point notBefore = o.notBefore.value_or(Clock::now() - kClockSkew);
  Clock::time_point notAfter = o.notAfter.value_or(notBefore + std::chrono::hours(24));
  ZT_TRY_STATUS(setValidity(cert, notBefore, notAfter));
  if (!o.commonName.empty()) {
    ZT_TRY_STATUS(addNameEntry(X509_get_subject_name(cert), "CN", o.commonName));
  }
  if (X509_set_issuer_name(cert, X509_get_subject_name(issuer.cert.get())) != 1 ||
      X509_set_pubkey(cert, subjectKey) != 1) {
    return fail(opensslError(kErr, "set issuer/public key"));
  }
  ZT_TRY_STATUS(addExtension(cert, issuer.cert.get(), NID_basic_constraints,
                             o.isCa ? "critical,CA:TRUE" : "critical,CA:FALSE"));
  ZT_TRY_STATUS(addExtension(cert, issuer.cert.get(), NID_key_usage,
                             "critical,digitalSignature,keyEncipherment"));
  if (o.serverAuth || o.clientAuth) {
    const char* eku = o.serverAuth && o.clientAuth ? "serverAuth,clientAuth"
                      : o.serverAuth               ? "serverAuth"
                                                   : "clientAuth";
    ZT_TRY_STATUS(addExtension(cert, issuer.cert.get(), NID_ext_key_usage, eku));
  }
  ZT_TRY_STATUS(addExtension(cert, issuer.cert.get(), NID_authority_key_identifier, "keyid"));
  if (!o.uriSans.empty() || !o.dnsSans.empty()) {
    auto names = makeSans(o.uriSans, o.dnsSans);
    if (!names) {
      return fail(names.error());
    }
    // Critical when the subject is empty (RFC 5280 §4.2.1.6), as istiod issues them.
    int critical = o.commonName.empty() ? 1 : 0;
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names->get(), critical, X509V3_ADD_DEFAULT) !=
        1) {
      return fail(opensslError(kErr, "add subjectAltName"));
    }
  }
  ZT_TRY_STATUS(sign(cert, issuer.key.get()));
  return x;
}

IssuedCertificate finishIssued(const Issuer& issuer, X509* leaf, std::string keyPem,
                               std::string_view caChainPem) {
  IssuedCertificate out;
  out.certPem = certificateToPem(leaf);
  out.keyPem = std::move(keyPem);
  out.chainPem = out.certPem;
  if (!issuer.selfSigned) {
    out.chainPem += certificateToPem(issuer.cert.get());
    out.chainPem += caChainPem;
  }
  return out;
}

// The URI and DNS names of a CSR's requested subjectAltName.
Status csrSans(X509_REQ* req, std::vector<std::string>* uris, std::vector<std::string>* dns) {
  OsslPtr<STACK_OF(X509_EXTENSION)> exts(X509_REQ_get_extensions(req));
  drainOpenSslErrors();
  if (!exts) {
    return ok();
  }
  OsslPtr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr)));
  drainOpenSslErrors();
  if (!names) {
    return ok();
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI && gn->type != GEN_DNS) {
      continue;
    }
    const ASN1_IA5STRING* s = gn->type == GEN_URI ? gn->d.uniformResourceIdentifier : gn->d.dNSName;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<size_t>(ASN1_STRING_length(s)));
    (gn->type == GEN_URI ? uris : dns)->push_back(std::move(value));
  }
  return ok();
}

Result<OsslPtr<X509_REQ>> parseCsr(std::string_view csrPem) {
  ERR_clear_error();
  BioPtr bio = memoryBio(csrPem);
  OsslPtr<X509_REQ> req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr)
                            : nullptr);
  if (!req) {
    return fail(opensslError(kErr, "malformed CSR PEM"));
  }
  return req;
}

}  // namespace

Result<CertAndKeyPem> mintRoot(std::string_view trustDomain, std::chrono::seconds validity) {
  if (trustDomain.empty()) {
    return fail(kErr, "empty trust domain");
  }
  auto key = generateP256Key();
  if (!key) {
    return fail(key.error());
  }
  auto x = newCertificate();
  if (!x) {
    return fail(x.error());
  }
  X509* cert = x->get();
  auto now = Clock::now();
  ZT_TRY_STATUS(setValidity(cert, now - kClockSkew, now + validity));
  ZT_TRY_STATUS(addNameEntry(X509_get_subject_name(cert), "O", trustDomain));
  if (X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1 ||
      X509_set_pubkey(cert, key->get()) != 1) {
    return fail(opensslError(kErr, "set issuer/public key"));
  }
  ZT_TRY_STATUS(addExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE"));
  ZT_TRY_STATUS(addExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign"));
  ZT_TRY_STATUS(addExtension(cert, cert, NID_subject_key_identifier, "hash"));
  ZT_TRY_STATUS(addExtension(cert, cert, NID_authority_key_identifier, "keyid:always"));
  ZT_TRY_STATUS(sign(cert, key->get()));
  return CertAndKeyPem{certificateToPem(cert), privateKeyToPem(key->get())};
}

Result<CertAndKeyPem> issueIntermediate(std::string_view caCertPem, std::string_view caKeyPem,
                                        const IntermediateOptions& options) {
  auto issuer = loadIssuer(caCertPem, caKeyPem);
  if (!issuer) {
    return fail(issuer.error());
  }
  auto key = generateP256Key();
  if (!key) {
    return fail(key.error());
  }
  auto x = newCertificate();
  if (!x) {
    return fail(x.error());
  }
  X509* cert = x->get();
  auto now = Clock::now();
  ZT_TRY_STATUS(setValidity(cert, now - kClockSkew, now + options.validity));
  if (!options.organization.empty()) {
    ZT_TRY_STATUS(addNameEntry(X509_get_subject_name(cert), "O", options.organization));
  }
  ZT_TRY_STATUS(addNameEntry(X509_get_subject_name(cert), "CN", options.commonName));
  if (X509_set_issuer_name(cert, X509_get_subject_name(issuer->cert.get())) != 1 ||
      X509_set_pubkey(cert, key->get()) != 1) {
    return fail(opensslError(kErr, "set issuer/public key"));
  }
  std::string bc = "critical,CA:TRUE";
  if (options.pathLength) {
    bc += ",pathlen:" + std::to_string(*options.pathLength);
  }
  ZT_TRY_STATUS(addExtension(cert, issuer->cert.get(), NID_basic_constraints, bc.c_str()));
  ZT_TRY_STATUS(
      addExtension(cert, issuer->cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  ZT_TRY_STATUS(addExtension(cert, issuer->cert.get(), NID_subject_key_identifier, "hash"));
  ZT_TRY_STATUS(addExtension(cert, issuer->cert.get(), NID_authority_key_identifier, "keyid"));
  ZT_TRY_STATUS(sign(cert, issuer->key.get()));
  return CertAndKeyPem{certificateToPem(cert), privateKeyToPem(key->get())};
}

WorkloadCertOptions workloadCertOptions(const Identity& id) {
  WorkloadCertOptions o;
  o.uriSans.push_back(id.toUri());
  return o;
}

Result<IssuedCertificate> issueWorkload(std::string_view caCertPem, std::string_view caKeyPem,
                                        const WorkloadCertOptions& options,
                                        std::string_view caChainPem) {
  auto issuer = loadIssuer(caCertPem, caKeyPem);
  if (!issuer) {
    return fail(issuer.error());
  }
  auto key = generateP256Key();
  if (!key) {
    return fail(key.error());
  }
  auto leaf = buildLeaf(*issuer, key->get(), options);
  if (!leaf) {
    return fail(leaf.error());
  }
  return finishIssued(*issuer, leaf->get(), privateKeyToPem(key->get()), caChainPem);
}

Result<CsrAndKeyPem> generateCsr(const Identity& id) {
  if (!id.valid()) {
    return fail(kErr, "CSR for an invalid identity " + id.toUri());
  }
  auto key = generateP256Key();
  if (!key) {
    return fail(key.error());
  }
  OsslPtr<X509_REQ> req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1) {
    return fail(opensslError(kErr, "create CSR"));
  }
  auto names = makeSans({id.toUri()}, {});
  if (!names) {
    return fail(names.error());
  }
  OsslPtr<STACK_OF(X509_EXTENSION)> exts(sk_X509_EXTENSION_new_null());
  X509_EXTENSION* san = X509V3_EXT_i2d(NID_subject_alt_name, /*crit=*/1, names->get());
  if (!exts || san == nullptr) {
    X509_EXTENSION_free(san);
    return fail(opensslError(kErr, "encode CSR subjectAltName"));
  }
  if (sk_X509_EXTENSION_push(exts.get(), san) == 0) {
    X509_EXTENSION_free(san);
    return fail(opensslError(TlsErrc::kInternal, "allocate extension stack"));
  }
  if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
    return fail(opensslError(kErr, "add CSR extensions"));
  }
  if (X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) {
    return fail(opensslError(kErr, "sign CSR"));
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return fail(opensslError(kErr, "write CSR PEM"));
  }
  return CsrAndKeyPem{bioToString(bio.get()), privateKeyToPem(key->get())};
}

Result<std::vector<std::string>> csrUriSans(std::string_view csrPem) {
  auto req = parseCsr(csrPem);
  if (!req) {
    return fail(req.error());
  }
  std::vector<std::string> uris;
  std::vector<std::string> dns;
  ZT_TRY_STATUS(csrSans(req->get(), &uris, &dns));
  return uris;
}

Result<IssuedCertificate> signCsr(std::string_view caCertPem, std::string_view caKeyPem,
                                  std::string_view csrPem, const WorkloadCertOptions& options,
                                  std::string_view caChainPem) {
  auto issuer = loadIssuer(caCertPem, caKeyPem);
  if (!issuer) {
    return fail(issuer.error());
  }
  auto req = parseCsr(csrPem);
  if (!req) {
    return fail(req.error());
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req->get());
  if (pub == nullptr || X509_REQ_verify(req->get(), pub) != 1) {
    return fail(opensslError(kErr, "CSR signature does not verify"));
  }
  WorkloadCertOptions o = options;
  if (o.uriSans.empty() && o.dnsSans.empty()) {
    ZT_TRY_STATUS(csrSans(req->get(), &o.uriSans, &o.dnsSans));
  }
  auto leaf = buildLeaf(*issuer, pub, o);
  if (!leaf) {
    return fail(leaf.error());
  }
  return finishIssued(*issuer, leaf->get(), {}, caChainPem);
}

}  // namespace zt::tls
