#pragma once

// In-memory drivers for TlsSession pairs: no sockets, bytes are moved between two sessions until
// both are established, one fails, or nothing moves any more.
//
// Thread: single-threaded helpers.

#include <memory>
#include <string>

#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/core/result.h"
#include "ztunnel/tls/tls_session.h"

namespace zt::testing {

struct HandshakeOutcome {
  Status client = ok();  // first error of the client session, if any
  Status server = ok();
  bool clientEstablished = false;
  bool serverEstablished = false;
  int rounds = 0;
  // Both sides established and neither failed.
  bool succeeded() const { return client && server && clientEstablished && serverEstablished; }
};

// Calls client.start(), then alternately feeds each side's output to the other (bounded by
// maxRounds) until both are established, one fails (its alert, if any, is still delivered to the
// other side), or no bytes are left in flight. Plaintext that arrives early goes to the given
// buffers if not null.
HandshakeOutcome pumpHandshake(tls::TlsSession& client, tls::TlsSession& server, int maxRounds = 16,
                               ByteBuffer* clientPlaintext = nullptr,
                               ByteBuffer* serverPlaintext = nullptr);

// A client and a server session plus the ciphertext in flight between them.
class TlsPair {
 public:
  TlsPair(std::unique_ptr<tls::TlsSession> client, std::unique_ptr<tls::TlsSession> server)
      : client_(std::move(client)), server_(std::move(server)) {}

  HandshakeOutcome handshake(int maxRounds = 16) {
    return pumpHandshake(*client_, *server_, maxRounds, &clientPlain_, &serverPlain_);
  }

  // Encrypt on one side (the bytes stay in flight until pump()).
  Status clientWrite(std::string_view data) { return write(*client_, data, toServer_); }
  Status serverWrite(std::string_view data) { return write(*server_, data, toClient_); }

  // Delivers everything in flight, both ways, until quiescent (bounded). Returns the first error.
  Status pump(int maxRounds = 64);

  tls::TlsSession& client() { return *client_; }
  tls::TlsSession& server() { return *server_; }
  ByteBuffer& clientReceived() { return clientPlain_; }  // plaintext the client decrypted
  ByteBuffer& serverReceived() { return serverPlain_; }
  ByteBuffer& toServer() { return toServer_; }  // ciphertext client -> server, not yet delivered
  ByteBuffer& toClient() { return toClient_; }
  bool clientPeerClosed() const { return clientPeerClosed_; }
  bool serverPeerClosed() const { return serverPeerClosed_; }

 private:
  static Status write(tls::TlsSession& s, std::string_view data, ByteBuffer& out) {
    return s.write(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()), out);
  }

  std::unique_ptr<tls::TlsSession> client_;
  std::unique_ptr<tls::TlsSession> server_;
  ByteBuffer toServer_;
  ByteBuffer toClient_;
  ByteBuffer clientPlain_;
  ByteBuffer serverPlain_;
  bool clientPeerClosed_ = false;
  bool serverPeerClosed_ = false;
};

// Parses TLS record headers in `wire` (a complete sequence of records); returns the record
// lengths (payload bytes, excluding the 5-byte header) and their content types. Returns false if
// the bytes are not a sequence of whole records.
struct RecordInfo {
  uint8_t type;
  uint16_t length;
};
bool parseRecords(const ByteBuffer& wire, std::vector<RecordInfo>* records);

}  // namespace zt::testing
