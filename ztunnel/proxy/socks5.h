#pragma once

// SOCKS5 (RFC 1928) server-side codec for the optional 127.0.0.1:15080 listener
// (UNSTABLE_ENABLE_SOCKS5). ztunnel supports only CONNECT with no authentication; so do we.
// Sans-IO: the caller feeds bytes as they arrive and writes the replies it is given.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"

namespace zt::proxy::socks5 {

enum class Socks5Errc {
  kBadVersion = 1,
  kNoAcceptableAuth,
  kUnsupportedCommand,
  kUnsupportedAddressType,
  kMalformed,
};
const ErrorCategory& errorCategory(Socks5Errc) noexcept;

// Reply codes (RFC 1928 §6).
enum class ReplyCode : uint8_t {
  kSucceeded = 0x00,
  kGeneralFailure = 0x01,
  kNotAllowed = 0x02,
  kNetworkUnreachable = 0x03,
  kHostUnreachable = 0x04,
  kConnectionRefused = 0x05,
  kTtlExpired = 0x06,
  kCommandNotSupported = 0x07,
  kAddressTypeNotSupported = 0x08,
};

struct DomainTarget {
  std::string host;
  uint16_t port = 0;
};
using Target = std::variant<SocketAddress, DomainTarget>;

// Incremental parser for the client's greeting then its request.
class ServerHandshake {
 public:
  enum class Stage { kGreeting, kRequest, kDone };

  struct Step {
    // Bytes to send to the client now (method selection or an error reply), possibly empty.
    std::string reply;
    // Bytes of `input` consumed; the rest belongs to the next stage or to the tunnel.
    size_t consumed = 0;
    // Set once the request is complete.
    std::optional<Target> target;
  };

  // Feed bytes; returns what to send and how much was used. Needs more input when nothing was
  // consumed and no target is set. An error means: send `errorReply()` (if non-empty) and close.
  Result<Step> feed(std::span<const uint8_t> input);
  Stage stage() const { return stage_; }

  // The reply to send for a failed handshake, given the error returned by feed().
  static std::string errorReply(const Error& error);

 private:
  Stage stage_ = Stage::kGreeting;
};

// The reply for a failed connect(2) with `err` (ECONNREFUSED -> connection refused, ...).
ReplyCode replyForErrno(int err);

// The final reply to a CONNECT: success with the bound address, or a failure code.
std::string connectReply(ReplyCode code, const std::optional<SocketAddress>& bound);

}  // namespace zt::proxy::socks5
