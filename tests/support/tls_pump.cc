#include "tests/support/tls_pump.h"

#include <vector>

namespace zt::testing {

HandshakeOutcome pumpHandshake(tls::TlsSession& client, tls::TlsSession& server, int maxRounds,
                               ByteBuffer* clientPlaintext, ByteBuffer* serverPlaintext) {
  HandshakeOutcome out;
  ByteBuffer toServer;
  ByteBuffer toClient;
  ByteBuffer sink;
  ByteBuffer& clientPlain = clientPlaintext != nullptr ? *clientPlaintext : sink;
  ByteBuffer& serverPlain = serverPlaintext != nullptr ? *serverPlaintext : sink;

  out.client = client.start(toServer);
  for (int round = 0; round < maxRounds; ++round) {
    out.rounds = round + 1;
    bool moved = false;
    if (out.server && !toServer.empty()) {
      moved = true;
      auto r = server.feed(toServer, serverPlain, toClient);
      if (!r) {
        out.server = tl::unexpected(r.error());
      }
    }
    if (out.client && !toClient.empty()) {
      moved = true;
      auto r = client.feed(toClient, clientPlain, toServer);
      if (!r) {
        out.client = tl::unexpected(r.error());
      }
    }
    out.clientEstablished = client.established();
    out.serverEstablished = server.established();
    if (!out.client && !out.server) {
      break;
    }
    if (out.clientEstablished && out.serverEstablished && toServer.empty() && toClient.empty()) {
      break;
    }
    if (!moved) {
      break;
    }
  }
  out.clientEstablished = client.established();
  out.serverEstablished = server.established();
  return out;
}

Status TlsPair::pump(int maxRounds) {
  for (int round = 0; round < maxRounds; ++round) {
    if (toServer_.empty() && toClient_.empty()) {
      return ok();
    }
    if (!toServer_.empty()) {
      auto r = server_->feed(toServer_, serverPlain_, toClient_);
      if (!r) {
        return tl::unexpected(r.error());
      }
      serverPeerClosed_ = r->peerClosed;
    }
    if (!toClient_.empty()) {
      auto r = client_->feed(toClient_, clientPlain_, toServer_);
      if (!r) {
        return tl::unexpected(r.error());
      }
      clientPeerClosed_ = r->peerClosed;
    }
  }
  return ok();
}

bool parseRecords(const ByteBuffer& wire, std::vector<RecordInfo>* records) {
  std::string bytes = wire.toString();
  size_t off = 0;
  while (off < bytes.size()) {
    if (bytes.size() - off < 5) {
      return false;
    }
    auto b = [&](size_t i) { return static_cast<uint8_t>(bytes[off + i]); };
    RecordInfo rec{b(0), static_cast<uint16_t>((b(3) << 8) | b(4))};
    if (bytes.size() - off - 5 < rec.length) {
      return false;
    }
    records->push_back(rec);
    off += 5 + rec.length;
  }
  return true;
}

}  // namespace zt::testing
