#include "ztunnel/tls/ktls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "ztunnel/core/log.h"
#include "ztunnel/core/unique_fd.h"
#include "ztunnel/tls/openssl_util.h"
#include "ztunnel/tls/tls_session.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace zt::tls {

namespace {

KernelTlsProbe unavailable(std::string what, int err) {
  KernelTlsProbe p;
  p.available = false;
  p.sysErrno = err;
  p.reason = std::move(what) + ": " + std::strerror(err);
  return p;
}

}  // namespace

KernelTlsProbe probeKernelTls() {
  // TCP_ULP needs an established TCP socket: a loopback listener and one connection to it.
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) {
    return unavailable("probe socket", errno);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return unavailable("probe bind 127.0.0.1", errno);
  }
  if (::listen(listener.get(), 1) != 0) {
    return unavailable("probe listen", errno);
  }
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return unavailable("probe getsockname", errno);
  }
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!client) {
    return unavailable("probe socket", errno);
  }
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return unavailable("probe connect 127.0.0.1", errno);
  }
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!accepted) {
    return unavailable("probe accept", errno);
  }
  static constexpr char kUlp[] = "tls";
  if (::setsockopt(client.get(), SOL_TCP, TCP_ULP, kUlp, sizeof(kUlp) - 1) != 0) {
    int err = errno;
    KernelTlsProbe p = unavailable("setsockopt(TCP_ULP, \"tls\")", err);
    if (err == ENOENT) {
      p.reason += " (kernel built without CONFIG_TLS, or the tls module is not loaded)";
    }
    return p;
  }
  KernelTlsProbe p;
  p.available = true;
  p.reason = "TCP_ULP \"tls\" accepted on a loopback socket";
  return p;
}

KernelTlsDecision decideKernelTls(KernelTlsWish wish, const KernelTlsProbe& probe) {
  KernelTlsDecision d;
  switch (wish) {
    case KernelTlsWish::kDisabled:
      d.mode = KernelTlsMode::kUserspace;
      d.level = spdlog::level::info;
      d.logLine = "kernel TLS: disabled by configuration; using userspace TLS";
      break;
    case KernelTlsWish::kAuto:
      if (probe.available) {
        d.mode = KernelTlsMode::kKernel;
        d.level = spdlog::level::info;
        d.logLine = "kernel TLS: available, enabled for TLS 1.3 connections";
      } else {
        d.mode = KernelTlsMode::kUserspace;
        d.level = spdlog::level::info;
        d.logLine = "kernel TLS: unavailable (" + probe.reason + "); using userspace TLS";
      }
      break;
    case KernelTlsWish::kRequired:
      if (probe.available) {
        d.mode = KernelTlsMode::kKernel;
        d.level = spdlog::level::info;
        d.logLine = "kernel TLS: required and available, enabled for TLS 1.3 connections";
      } else {
        d.mode = KernelTlsMode::kUserspace;
        d.fatal = true;
        d.level = spdlog::level::err;
        d.logLine = "kernel TLS: required by configuration but unavailable (" + probe.reason + ")";
      }
      break;
  }
  return d;
}

void logKernelTlsDecision(const KernelTlsDecision& decision) {
  spdlog::default_logger_raw()->log(decision.level, "{}", decision.logLine);
}

Result<std::vector<uint8_t>> hkdfExpandLabel(const char* hash, std::span<const uint8_t> secret,
                                             std::string_view label,
                                             std::span<const uint8_t> context, size_t length) {
  constexpr std::string_view kPrefix = "tls13 ";
  if (length > 0xffff || kPrefix.size() + label.size() > 255 || context.size() > 255) {
    return fail(TlsErrc::kInvalidArgument, "HKDF-Expand-Label argument too long");
  }
  // struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel;
  std::vector<uint8_t> info;
  info.reserve(4 + kPrefix.size() + label.size() + context.size());
  info.push_back(static_cast<uint8_t>(length >> 8));
  info.push_back(static_cast<uint8_t>(length & 0xff));
  info.push_back(static_cast<uint8_t>(kPrefix.size() + label.size()));
  info.insert(info.end(), kPrefix.begin(), kPrefix.end());
  info.insert(info.end(), label.begin(), label.end());
  info.push_back(static_cast<uint8_t>(context.size()));
  info.insert(info.end(), context.begin(), context.end());

  OsslPtr<EVP_KDF> kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr));
  OsslPtr<EVP_KDF_CTX> kctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  if (!kctx) {
    return fail(opensslError(TlsErrc::kInternal, "fetch HKDF"));
  }
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(hash), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(secret.data()),
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end(),
  };
  std::vector<uint8_t> out(length);
  if (EVP_KDF_derive(kctx.get(), out.data(), out.size(), params) != 1) {
    return fail(opensslError(TlsErrc::kInternal, "HKDF-Expand"));
  }
  return out;
}

Result<TrafficKeys> deriveTrafficKeys(uint16_t cipherSuite, std::span<const uint8_t> secret) {
  const char* hash;
  size_t keyLen;
  switch (cipherSuite) {
    case 0x1301:  // TLS_AES_128_GCM_SHA256
      hash = "SHA256";
      keyLen = 16;
      break;
    case 0x1302:  // TLS_AES_256_GCM_SHA384
      hash = "SHA384";
      keyLen = 32;
      break;
    default:
      return fail(TlsErrc::kKernelTls, "unsupported cipher suite for kernel TLS");
  }
  auto key = hkdfExpandLabel(hash, secret, "key", {}, keyLen);
  if (!key) {
    return fail(key.error());
  }
  auto iv = hkdfExpandLabel(hash, secret, "iv", {}, 12);
  if (!iv) {
    return fail(iv.error());
  }
  TrafficKeys keys;
  keys.key = std::move(*key);
  std::memcpy(keys.iv.data(), iv->data(), keys.iv.size());
  OPENSSL_cleanse(iv->data(), iv->size());
  return keys;
}

KernelTlsCryptoInfo::~KernelTlsCryptoInfo() {
  OPENSSL_cleanse(&aes256, sizeof(aes256));
}

Status makeKernelTlsCryptoInfo(uint16_t cipherSuite, std::span<const uint8_t> secret, uint64_t seq,
                               KernelTlsCryptoInfo& out) {
  auto keys = deriveTrafficKeys(cipherSuite, secret);
  if (!keys) {
    return fail(keys.error());
  }
  uint8_t seqBytes[8];
  for (int i = 0; i < 8; ++i) {
    seqBytes[i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
  }
  // The kernel forms the nonce as (salt || iv) XOR seq, i.e. RFC 8446 §5.3 with the 12-byte
  // write_iv split into a 4-byte salt and an 8-byte iv.
  if (cipherSuite == 0x1301) {
    auto& c = out.aes128;
    static_assert(sizeof(c.key) == 16 && sizeof(c.salt) == 4 && sizeof(c.iv) == 8);
    c.info.version = TLS_1_3_VERSION;
    c.info.cipher_type = TLS_CIPHER_AES_GCM_128;
    std::memcpy(c.key, keys->key.data(), sizeof(c.key));
    std::memcpy(c.salt, keys->iv.data(), sizeof(c.salt));
    std::memcpy(c.iv, keys->iv.data() + 4, sizeof(c.iv));
    std::memcpy(c.rec_seq, seqBytes, sizeof(c.rec_seq));
    out.size = sizeof(c);
  } else {
    auto& c = out.aes256;
    static_assert(sizeof(c.key) == 32 && sizeof(c.salt) == 4 && sizeof(c.iv) == 8);
    c.info.version = TLS_1_3_VERSION;
    c.info.cipher_type = TLS_CIPHER_AES_GCM_256;
    std::memcpy(c.key, keys->key.data(), sizeof(c.key));
    std::memcpy(c.salt, keys->iv.data(), sizeof(c.salt));
    std::memcpy(c.iv, keys->iv.data() + 4, sizeof(c.iv));
    std::memcpy(c.rec_seq, seqBytes, sizeof(c.rec_seq));
    out.size = sizeof(c);
  }
  OPENSSL_cleanse(keys->key.data(), keys->key.size());
  OPENSSL_cleanse(keys->iv.data(), keys->iv.size());
  return ok();
}

Status enableKernelTls(int fd, const TlsSession& session) {
  auto state = session.trafficState();
  if (!state) {
    return fail(state.error());
  }
  KernelTlsCryptoInfo tx;
  KernelTlsCryptoInfo rx;
  ZT_TRY_STATUS(makeKernelTlsCryptoInfo(state->cipherSuite, state->txSecret, state->txSeq, tx));
  ZT_TRY_STATUS(makeKernelTlsCryptoInfo(state->cipherSuite, state->rxSecret, state->rxSeq, rx));
  static constexpr char kUlp[] = "tls";
  if (::setsockopt(fd, SOL_TCP, TCP_ULP, kUlp, sizeof(kUlp) - 1) != 0) {
    return fail(TlsErrc::kKernelTls, "setsockopt(TCP_ULP, \"tls\")", errno);
  }
  if (::setsockopt(fd, SOL_TLS, TLS_TX, &tx.base, static_cast<socklen_t>(tx.size)) != 0) {
    return fail(TlsErrc::kKernelTls, "setsockopt(SOL_TLS, TLS_TX)", errno);
  }
  if (::setsockopt(fd, SOL_TLS, TLS_RX, &rx.base, static_cast<socklen_t>(rx.size)) != 0) {
    return fail(TlsErrc::kKernelTls, "setsockopt(SOL_TLS, TLS_RX)", errno);
  }
  return ok();
}

}  // namespace zt::tls
