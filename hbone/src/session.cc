#include "hbone/session.h"

#include "session_core.h"

namespace hbone {

SessionConfig SessionConfig::clientDefaults() {
  SessionConfig c;
  c.maxHeaderListSize = 16 << 10;
  c.sendHighWatermark = 4 << 20;  // ztunnel client: max send buffer = stream window
  c.sendLowWatermark = 1 << 20;
  return c;
}

SessionConfig SessionConfig::serverDefaults() {
  SessionConfig c;
  c.maxHeaderListSize = 64 << 10;
  c.maxConcurrentStreams = 200;
  c.sendHighWatermark = 400 << 10;  // ztunnel server: max send buffer 400 KiB
  c.sendLowWatermark = 100 << 10;
  return c;
}

// ---------------------------------------------------------------------------------------------

ClientSession::ClientSession(std::unique_ptr<detail::SessionCore> core) : core_(std::move(core)) {}
ClientSession::~ClientSession() = default;

zt::Result<std::unique_ptr<ClientSession>> ClientSession::create(const SessionConfig& config,
                                                                 ClientObserver& observer) {
  auto core = detail::SessionCore::create(detail::SessionCore::Role::kClient, config, observer,
                                          &observer, nullptr);
  if (!core) {
    return zt::fail(std::move(core).error());
  }
  return std::unique_ptr<ClientSession>(new ClientSession(std::move(*core)));
}

zt::Status ClientSession::receive(std::span<const uint8_t> bytes) {
  return core_->receive(bytes);
}
zt::Status ClientSession::produce(zt::ByteBuffer& out, size_t maxBytes) {
  return core_->produce(out, maxBytes);
}
bool ClientSession::wantsWrite() const {
  return core_->wantsWrite();
}
bool ClientSession::wantsRead() const {
  return core_->wantsRead();
}
zt::Result<StreamId> ClientSession::openTunnel(const ConnectRequest& request) {
  return core_->openTunnel(request);
}
bool ClientSession::canOpenTunnel() const {
  return core_->canOpenTunnel();
}
size_t ClientSession::activeStreams() const {
  return core_->activeStreams();
}
zt::Status ClientSession::send(StreamId id, zt::ByteBuffer& data) {
  return core_->send(id, data);
}
size_t ClientSession::queuedBytes(StreamId id) const {
  return core_->queuedBytes(id);
}
zt::Status ClientSession::closeWrite(StreamId id) {
  return core_->closeWrite(id);
}
void ClientSession::reset(StreamId id, uint32_t h2ErrorCode) {
  core_->reset(id, h2ErrorCode);
}
void ClientSession::consume(StreamId id, size_t n) {
  core_->consume(id, n);
}
zt::Status ClientSession::tick(zt::MonotonicTime now) {
  return core_->tick(now);
}
void ClientSession::goAway() {
  core_->goAway();
}
void ClientSession::abort() {
  core_->abort();
}
bool ClientSession::isDead() const {
  return core_->isDead();
}
const zt::Error* ClientSession::failure() const {
  return core_->failure();
}

// ---------------------------------------------------------------------------------------------

ServerSession::ServerSession(std::unique_ptr<detail::SessionCore> core) : core_(std::move(core)) {}
ServerSession::~ServerSession() = default;

zt::Result<std::unique_ptr<ServerSession>> ServerSession::create(const SessionConfig& config,
                                                                 ServerObserver& observer) {
  auto core = detail::SessionCore::create(detail::SessionCore::Role::kServer, config, observer,
                                          nullptr, &observer);
  if (!core) {
    return zt::fail(std::move(core).error());
  }
  return std::unique_ptr<ServerSession>(new ServerSession(std::move(*core)));
}

zt::Status ServerSession::receive(std::span<const uint8_t> bytes) {
  return core_->receive(bytes);
}
zt::Status ServerSession::produce(zt::ByteBuffer& out, size_t maxBytes) {
  return core_->produce(out, maxBytes);
}
bool ServerSession::wantsWrite() const {
  return core_->wantsWrite();
}
bool ServerSession::wantsRead() const {
  return core_->wantsRead();
}
zt::Status ServerSession::respond(StreamId id, int status, std::string_view baggage) {
  return core_->respond(id, status, baggage);
}
zt::Status ServerSession::send(StreamId id, zt::ByteBuffer& data) {
  return core_->send(id, data);
}
size_t ServerSession::queuedBytes(StreamId id) const {
  return core_->queuedBytes(id);
}
zt::Status ServerSession::closeWrite(StreamId id) {
  return core_->closeWrite(id);
}
void ServerSession::reset(StreamId id, uint32_t h2ErrorCode) {
  core_->reset(id, h2ErrorCode);
}
void ServerSession::consume(StreamId id, size_t n) {
  core_->consume(id, n);
}
zt::Status ServerSession::tick(zt::MonotonicTime now) {
  return core_->tick(now);
}
void ServerSession::goAway() {
  core_->goAway();
}
void ServerSession::abort() {
  core_->abort();
}
bool ServerSession::isDead() const {
  return core_->isDead();
}
const zt::Error* ServerSession::failure() const {
  return core_->failure();
}
size_t ServerSession::activeStreams() const {
  return core_->activeStreams();
}

}  // namespace hbone
