#pragma once

// Module-internal: the OpenSSL callbacks TlsContext installs on its SSL_CTX, implemented in
// tls_session.cc because they act on the TlsSession that owns the SSL.

#include <openssl/types.h>

namespace zt::tls::detail {

// The memory BIO of a TlsSession (reads from the span being fed, appends writes to the caller's
// ByteBuffer). One BIO_METHOD per TlsContext, freed with it.
BIO_METHOD* newSessionBioMethod();

// SSL_CTX_set_cert_verify_callback: chain verification plus the SPIFFE checks.
int verifyPeerCallback(X509_STORE_CTX* store, void* arg);

// SSL_CTX_set_keylog_callback: captures application traffic secrets (captureTrafficSecrets).
void keylogCallback(const SSL* ssl, const char* line);

}  // namespace zt::tls::detail
