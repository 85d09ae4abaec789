#pragma once

// Kernel TLS (Linux TCP_ULP "tls"): after a userspace handshake, hand the record layer of a TLS 1.3
// session to the kernel so sends/receives (and splice/sendfile) carry plaintext through the socket.
//
// Start-up: probeKernelTls() once, decideKernelTls(wish, probe) -> mode + the one line to log.
// Per connection (only in kernel mode, with TlsOptions::captureTrafficSecrets): after the
// handshake and after all ciphertext produced by the session has been sent on the socket,
// enableKernelTls(fd, session). From then on the socket carries plaintext, the TlsSession must
// not be used for data any more, and non-data records (alerts, KeyUpdate) arrive as control
// messages (TLS_GET_RECORD_TYPE) that the caller must handle; a KeyUpdate from the peer cannot be
// followed by the kernel and ends the connection.
//
// On this project's build/CI machines CONFIG_TLS is off (the probe reports ENOENT), so only the
// probe, the decision and the key schedule are exercised by tests; the setsockopt path is not.
//
// Thread: all functions are thread-safe (no shared state).

#include <linux/tls.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <spdlog/common.h>

#include "ztunnel/core/result.h"
#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

class TlsSession;

struct KernelTlsProbe {
  bool available = false;
  int sysErrno = 0;    // errno of the failing call when unavailable
  std::string reason;  // human-readable, e.g. "TCP_ULP tls: No such file or directory (kernel
                       // built without CONFIG_TLS or tls module not loaded)"
};

// Creates a loopback TCP connection and tries setsockopt(TCP_ULP, "tls") on it. Blocking, cheap
// (a few syscalls); call at start-up, not per connection.
KernelTlsProbe probeKernelTls();

enum class KernelTlsWish { kDisabled, kAuto, kRequired };
enum class KernelTlsMode { kUserspace, kKernel };

struct KernelTlsDecision {
  KernelTlsMode mode = KernelTlsMode::kUserspace;
  bool fatal = false;  // kRequired but unavailable: start-up must fail
  spdlog::level::level_enum level = spdlog::level::info;
  std::string logLine;
};

// Pure: what to do given the configuration and the probe, and the single line to log about it.
KernelTlsDecision decideKernelTls(KernelTlsWish wish, const KernelTlsProbe& probe);

// Logs decision.logLine once at decision.level on the default logger.
void logKernelTlsDecision(const KernelTlsDecision& decision);

// RFC 8446 §7.1 HKDF-Expand-Label(secret, label, context, length) with "tls13 " prefixed to
// label; `hash` is "SHA256" or "SHA384".
Result<std::vector<uint8_t>> hkdfExpandLabel(const char* hash, std::span<const uint8_t> secret,
                                             std::string_view label,
                                             std::span<const uint8_t> context, size_t length);

struct TrafficKeys {
  std::vector<uint8_t> key;  // 16 (AES-128-GCM) or 32 (AES-256-GCM) bytes
  std::array<uint8_t, 12> iv{};
};

// RFC 8446 §7.3: [sender]_write_key/iv from an application traffic secret, for TLS 1.3 suite
// 0x1301 (TLS_AES_128_GCM_SHA256) or 0x1302 (TLS_AES_256_GCM_SHA384).
Result<TrafficKeys> deriveTrafficKeys(uint16_t cipherSuite, std::span<const uint8_t> secret);

// The setsockopt(SOL_TLS, TLS_TX/TLS_RX) argument for one direction.
struct KernelTlsCryptoInfo {
  union {
    tls_crypto_info base;
    tls12_crypto_info_aes_gcm_128 aes128;
    tls12_crypto_info_aes_gcm_256 aes256;
  };
  size_t size = 0;  // bytes to pass to setsockopt

  KernelTlsCryptoInfo() : aes256{} {}
  ~KernelTlsCryptoInfo();  // wipes the key
  KernelTlsCryptoInfo(const KernelTlsCryptoInfo&) = delete;
  KernelTlsCryptoInfo& operator=(const KernelTlsCryptoInfo&) = delete;
};

// Fills `out` for TLS 1.3: key, salt = iv[0..4), iv = iv[4..12), rec_seq = big-endian `seq`.
Status makeKernelTlsCryptoInfo(uint16_t cipherSuite, std::span<const uint8_t> secret, uint64_t seq,
                               KernelTlsCryptoInfo& out);

// setsockopt(TCP_ULP "tls") + TLS_TX + TLS_RX from the session's captured secrets and record
// counts. Preconditions: kernel mode decided, the session was created with captureTrafficSecrets,
// is an established TLS 1.3 session, and every byte of ciphertext it produced has been written to
// `fd`. Errors: kKernelTls (with errno for setsockopt failures).
Status enableKernelTls(int fd, const TlsSession& session);

}  // namespace zt::tls
