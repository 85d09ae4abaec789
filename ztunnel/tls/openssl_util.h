#pragma once

// Module-internal helpers around OpenSSL: owning pointers for OpenSSL objects and conversion of
// the thread's OpenSSL error queue into zt::Error details. Other modules should not need this
// header; it is public only because several tls/ .cc files share it.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

#include "ztunnel/core/error.h"
#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

// One deleter for every OpenSSL type we own; overload resolution picks the right free function.
struct OpenSslDeleter {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
  void operator()(BIO* p) const { BIO_free_all(p); }
  void operator()(BIO_METHOD* p) const { BIO_meth_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(ASN1_INTEGER* p) const { ASN1_INTEGER_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(SSL* p) const { SSL_free(p); }
};

template <class T>
using OsslPtr = std::unique_ptr<T, OpenSslDeleter>;

using X509Ptr = OsslPtr<X509>;
using EvpPkeyPtr = OsslPtr<EVP_PKEY>;
using X509StorePtr = OsslPtr<X509_STORE>;
using X509StackPtr = OsslPtr<STACK_OF(X509)>;
using BioPtr = OsslPtr<BIO>;

// Empties the calling thread's OpenSSL error queue and returns its entries as text
// ("lib:func:reason; ..."), or "" if it was empty. Every error path that touched OpenSSL calls this
// (directly or through opensslError) so no stale entry poisons the next SSL_get_error on the
// thread.
std::string drainOpenSslErrors();

// An Error whose detail is `what` followed by the drained OpenSSL error queue.
Error opensslError(TlsErrc code, std::string_view what);

// A read-only memory BIO over `data` (no copy); the data must outlive the BIO.
BioPtr memoryBio(std::string_view data);

// The contents of a memory BIO written by PEM_write_bio_*.
std::string bioToString(BIO* bio);

}  // namespace zt::tls
