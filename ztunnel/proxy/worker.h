#pragma once

// Worker: one per core, each on its own thread with its own io_uring, listeners (SO_REUSEPORT),
// connections, HBONE pool, buffers and timers — shared-nothing. It runs the whole data path:
//
//   outbound  app ─► :15001 (or SOCKS5) ─► route ─► pooled mTLS HTTP/2 CONNECT ─► peer :15008
//                                                └► plain TCP passthrough
//   inbound   peer ─► :15008 TLS + HTTP/2 ─► CONNECT checks + authorization ─► upstream app
//             client ─► :15006 (plaintext) ─► authorization (no identity) ─► upstream app
//
// Object model (all owned by the worker, addressed by generation-checked handles):
//   Socket     one fd: a listener, an app-facing plain socket, or the TCP transport of an HBONE
//              connection. Owns its send queue and the in-flight sendmsg. Socket I/O events are
//              routed to its owner (a Tunnel or an HboneConn) by one switch.
//   HboneConn  TLS session + HTTP/2 session (client or server) over one Socket; carries many
//              tunnels as streams. Client connections live in the pool, keyed like ztunnel's
//              WorkloadKey (source identity, expected destination identities, source IP,
//              destination address).
//   Tunnel     one proxied connection: two ends, each a plain Socket or an HTTP/2 stream; bytes
//              from one end are delivered to the other, EOF becomes FIN / END_STREAM, errors
//              become RST / RST_STREAM(CONNECT_ERROR).
//
// Memory per tunnel is bounded: a plain socket's send queue above plainHighWatermark pauses the
// source end (stops its recv, or withholds HTTP/2 window updates: a stream's bytes are consumed
// only once written to the destination socket), and a stream's send queue above the HTTP/2
// session's high mark pauses the source socket until onStreamWritable.
//
// Lifetime rule: an object is destroyed only after all of its io_uring operations completed
// (sockets count them; closing cancels and waits), and never inside a callback of its own: dead
// tunnels and connections are freed in afterDispatch().
//
// Threads: create(), run() and every handler run on the worker thread; other threads talk to it
// only through its Mailbox (WorkerMessage). No locks on the data path.

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "hbone/session.h"
#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"
#include "ztunnel/core/unique_fd.h"
#include "ztunnel/identity/workload_tls.h"
#include "ztunnel/io/buf_ring.h"
#include "ztunnel/io/event_loop.h"
#include "ztunnel/io/slot_map.h"
#include "ztunnel/proxy/proxy_config.h"
#include "ztunnel/proxy/response_flags.h"
#include "ztunnel/proxy/routing.h"
#include "ztunnel/proxy/socks5.h"
#include "ztunnel/state/random.h"
#include "ztunnel/state/state_store.h"
#include "ztunnel/tls/tls_session.h"

namespace zt::proxy {

class Worker;

// What every worker reads: configuration, the published state and the workload's TLS material.
// Built once by app/; outlives the workers.
struct ProxyInputs {
  const ProxyConfig& config;
  state::StateStore& state;
  identity::CredentialStore& credentials;
};

// Control-plane messages to a worker (rare; run on the worker thread).
using WorkerMessage = std::function<void(Worker&)>;
using WorkerMailbox = io::Mailbox<WorkerMessage>;

// The listening sockets of one worker (SO_REUSEPORT twins of the other workers'). Created by app/
// so that bind errors surface at start-up; an invalid fd means "no such listener".
struct WorkerListeners {
  UniqueFd outbound;
  UniqueFd inbound;
  UniqueFd inboundPlaintext;
  UniqueFd socks5;
};

class Worker {
 public:
  // Call on the thread that will run() the worker (the ring is bound to it).
  static Result<std::unique_ptr<Worker>> create(const ProxyInputs& inputs,
                                                WorkerListeners listeners, unsigned index,
                                                WorkerMailbox& mailbox);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until stopped (stop(), or drain() finished). Errors only if io_uring itself fails.
  Status run();

  // On the worker thread (post them as a WorkerMessage from elsewhere):
  // Stop accepting, send GOAWAY on inbound HBONE connections, let open tunnels finish; at
  // `deadline` close whatever is left; then run() returns.
  void drain(MonotonicTime deadline);
  // Close everything now and return from run().
  void stop();

  unsigned index() const { return index_; }

  // --- io::EventLoop handler interface ---
  void onCompletion(io::Token token, int32_t res, uint32_t flags);
  void onTimer(uint64_t cookie);
  void onMessage(WorkerMessage&& message);
  void afterDispatch();

 private:
  // ---------- objects ----------
  enum class ListenerKind : uint8_t { kOutbound, kInbound, kInboundPlaintext, kSocks5 };
  enum class OwnerKind : uint8_t { kNone, kTunnel, kHbone };
  static constexpr size_t kMaxIov = 64;

  struct Socket {
    UniqueFd fd;
    ListenerKind listener = ListenerKind::kOutbound;
    OwnerKind ownerKind = OwnerKind::kNone;
    uint32_t ownerSlot = 0;
    uint16_t ownerGen = 0;
    uint8_t inflight = 0;    // operations submitted and not yet completed
    bool accepting = false;  // listener: multishot accept armed
    bool connected = false;  // usable for send (accepted, or connect completed)
    bool recvArmed = false;
    bool recvParked = false;  // recv hit ENOBUFS; re-armed when buffers are back
    bool recvWanted = false;  // the owner wants bytes (not paused, not at EOF)
    bool readEof = false;     // FIN (or error) seen on the read side
    bool sendArmed = false;
    bool shutdownWanted = false;  // send FIN once `out` is flushed
    bool shutdownDone = false;
    bool closing = false;  // cancel issued; freed when inflight reaches 0
    bool closeWhenFlushed = false;
    bool failed = false;  // a send or recv failed: nothing more will work
    ByteBuffer out;       // bytes waiting to be sent
    msghdr msg{};
    iovec iov[kMaxIov]{};
    sockaddr_storage connectAddr{};
    socklen_t connectLen = 0;
  };
  using SocketMap = io::SlotMap<Socket>;
  using SocketHandle = SocketMap::Handle;

  struct HboneConn;
  using ConnMap = io::SlotMap<HboneConn>;
  using ConnHandle = ConnMap::Handle;

  struct Tunnel;
  using TunnelMap = io::SlotMap<Tunnel>;
  using TunnelHandle = TunnelMap::Handle;

  // One end of a tunnel.
  struct End {
    enum class Type : uint8_t { kNone, kSocket, kStream } type = Type::kNone;
    SocketHandle socket;
    ConnHandle conn;
    hbone::StreamId stream = -1;
    bool eofSent = false;      // the other end's EOF was passed to this end
    bool eofReceived = false;  // this end finished sending to us
    bool closed = false;       // stream fully closed (onStreamClosed) / socket released
    bool paused = false;       // socket source paused for backpressure
  };

  enum class TunnelKind : uint8_t {
    kOutboundHbone,
    kOutboundTcp,
    kInboundHbone,
    kInboundPlaintext
  };
  enum class TunnelPhase : uint8_t { kSocks5, kWaitingForPool, kConnecting, kEstablished };

  struct Tunnel {
    TunnelKind kind = TunnelKind::kOutboundTcp;
    TunnelPhase phase = TunnelPhase::kConnecting;
    End ends[2];  // 0: the side that started the connection; 1: the destination side
    bool dead = false;
    // For the pool while waiting for a connection, and for the CONNECT request.
    std::string poolKey;
    std::optional<HboneRoute> route;
    hbone::ConnectRequest request;
    std::shared_ptr<const state::ProxyState> state;  // keeps route pointers valid
    // SOCKS5 handshake (only for connections from the SOCKS5 listener).
    std::unique_ptr<socks5::ServerHandshake> socks;
    ByteBuffer socksPending;
    std::optional<socks5::ReplyCode> socksFailure;  // the reply for a failure, when known
    // Access log.
    SocketAddress src;
    SocketAddress dst;
    std::string hboneAddr;
    std::string srcIdentity;
    std::string dstIdentity;
    std::string dstWorkload;
    std::string dstService;
    MonotonicTime start{};
    uint64_t bytesUp = 0;    // from ends[0] to ends[1]
    uint64_t bytesDown = 0;  // from ends[1] to ends[0]
    ResponseFlag flag = ResponseFlag::kNone;
    std::string error;
  };

  struct PoolEntry {
    std::vector<ConnHandle> conns;
    std::deque<TunnelHandle> waiters;
    bool dialing = false;
  };

  // An HBONE connection. The sessions call back into it synchronously; it forwards to the worker.
  struct HboneConn final : hbone::ClientObserver, hbone::ServerObserver {
    enum class Phase : uint8_t { kConnecting, kHandshaking, kReady };

    HboneConn(Worker& w, bool client) : worker(w), isClient(client) {}

    Worker& worker;
    ConnHandle self;
    bool isClient;
    Phase phase = Phase::kConnecting;
    SocketHandle socket;
    std::unique_ptr<tls::TlsSession> tls;
    std::unique_ptr<hbone::ClientSession> client;
    std::unique_ptr<hbone::ServerSession> server;
    ByteBuffer plainIn;   // decrypted bytes not yet given to the HTTP/2 session
    ByteBuffer plainOut;  // HTTP/2 frames not yet encrypted
    std::unordered_map<hbone::StreamId, TunnelHandle> streams;
    std::string poolKey;  // client connections: the pool entry they belong to ("" once removed)
    SocketAddress local;
    SocketAddress peer;
    std::string peerIdentity;
    io::TimerId handshakeTimer;
    io::TimerId tickTimer;
    io::TimerId idleTimer;
    bool dirty = false;
    bool dead = false;

    // hbone::ClientObserver / hbone::ServerObserver
    void onTunnelResponse(hbone::StreamId id, int status) override {
      worker.onTunnelResponse(*this, id, status);
    }
    void onGoaway() override { worker.onGoaway(*this); }
    void onConnectRequest(hbone::StreamId id, hbone::ConnectRequest&& request) override {
      worker.onConnectRequest(*this, id, std::move(request));
    }
    void onData(hbone::StreamId id, std::span<const uint8_t> data) override {
      worker.onStreamData(*this, id, data);
    }
    void onEndOfStream(hbone::StreamId id) override { worker.onStreamEnd(*this, id); }
    void onStreamReset(hbone::StreamId id, uint32_t code) override {
      worker.onStreamReset(*this, id, code);
    }
    void onStreamClosed(hbone::StreamId id) override { worker.onStreamClosed(*this, id); }
    void onStreamWritable(hbone::StreamId id) override { worker.onStreamWritable(*this, id); }

    bool sessionDead() const {
      return isClient ? (client && client->isDead()) : (server && server->isDead());
    }
    bool wantsWrite() const {
      return isClient ? (client && client->wantsWrite()) : (server && server->wantsWrite());
    }
    size_t activeStreams() const {
      return isClient ? (client ? client->activeStreams() : 0)
                      : (server ? server->activeStreams() : 0);
    }
  };

  // ---------- construction ----------
  Worker(const ProxyInputs& inputs, unsigned index, WorkerMailbox& mailbox);
  Status init(WorkerListeners listeners);
  Status addListener(UniqueFd fd, ListenerKind kind);

  // ---------- sockets (worker.cc) ----------
  SocketHandle newSocket(UniqueFd fd);
  Socket* socket(SocketHandle h) { return sockets_.get(h); }
  void setOwner(SocketHandle h, OwnerKind kind, uint32_t slot, uint16_t gen);
  void armAccept(SocketHandle h, Socket& s);
  void armRecv(SocketHandle h, Socket& s);
  void wantRecv(SocketHandle h, bool want);
  void trySend(SocketHandle h, Socket& s);
  void maybeShutdown(SocketHandle h, Socket& s);
  void closeSocket(SocketHandle h, bool abortive);
  void releaseSocketIfDone(SocketHandle h, Socket& s);
  void startConnect(SocketHandle h, Socket& s, const SocketAddress& to);
  void onAccept(SocketHandle h, Socket& s, int32_t res, uint32_t flags);
  void onRecv(SocketHandle h, Socket& s, int32_t res, uint32_t flags);
  void onSend(SocketHandle h, Socket& s, int32_t res);
  void onConnect(SocketHandle h, Socket& s, int32_t res);
  void rearmParked();

  // Calls onTunnel(TunnelHandle, Tunnel&) or onConn(ConnHandle, HboneConn&) for the socket's
  // live owner, if any.
  template <class OnTunnel, class OnConn>
  void toOwner(const Socket& s, OnTunnel&& onTunnel, OnConn&& onConn);
  // Socket events, routed to the owner.
  void socketData(SocketHandle h, Socket& s, std::span<const uint8_t> data);
  void socketEof(SocketHandle h, Socket& s);
  void socketError(SocketHandle h, Socket& s, int err, const char* what);
  void socketSent(SocketHandle h, Socket& s, size_t n);
  void socketConnected(SocketHandle h, Socket& s, int err);

  // ---------- tunnels (worker_tunnel.cc) ----------
  TunnelHandle newTunnel(TunnelKind kind);
  static bool isOutbound(TunnelKind kind) {
    return kind == TunnelKind::kOutboundHbone || kind == TunnelKind::kOutboundTcp;
  }
  Tunnel* tunnel(TunnelHandle h) { return tunnels_.get(h); }
  void attachSocket(TunnelHandle th, Tunnel& t, int side, SocketHandle sh);
  void tunnelSocketData(TunnelHandle th, Tunnel& t, int side, std::span<const uint8_t> data);
  void tunnelSocketEof(TunnelHandle th, Tunnel& t, int side);
  void tunnelSocketSent(TunnelHandle th, Tunnel& t, int side, size_t n);
  void tunnelSocketConnected(TunnelHandle th, Tunnel& t, int side, int err);
  void deliver(TunnelHandle th, Tunnel& t, int to, std::span<const uint8_t> data);
  void propagateEof(TunnelHandle th, Tunnel& t, int from);
  void pauseSource(Tunnel& t, int source, bool pause);
  void establish(TunnelHandle th, Tunnel& t);
  void checkFinished(TunnelHandle th, Tunnel& t);
  void abortTunnel(TunnelHandle th, Tunnel& t, ResponseFlag flag, std::string error);
  // Releases both ends (sockets closed, abortively or not; open streams reset), writes the
  // access log, and queues the tunnel for freeing. Graceful ends come from checkFinished.
  void endTunnel(TunnelHandle th, Tunnel& t, bool abortive);
  void logTunnel(const Tunnel& t);
  int sideOfSocket(const Tunnel& t, SocketHandle h) const;

  // ---------- accepting and routing (worker_accept.cc) ----------
  // A tunnel whose end 0 is the accepted socket `fd` from `peer`.
  TunnelHandle adoptClient(UniqueFd fd, const SocketAddress& peer, TunnelKind kind);
  void acceptOutbound(UniqueFd fd, bool socks5);
  void acceptInboundPlaintext(UniqueFd fd);
  void acceptInboundHbone(UniqueFd fd);
  void routeOutboundTunnel(TunnelHandle th, Tunnel& t, const SocketAddress& target);
  void socks5Data(TunnelHandle th, Tunnel& t, std::span<const uint8_t> data);
  // A TCP socket for an outgoing connection with PACKET_MARK, keepalive and, when given and
  // allowed, the spoofed source; without CAP_NET_ADMIN it drops what needs it (once, logged).
  Result<UniqueFd> openSocket(int family, std::optional<IpAddress> spoofSource);
  Result<SocketHandle> connectUpstream(TunnelHandle th, Tunnel& t, const SocketAddress& to,
                                       std::optional<IpAddress> spoofSource);
  const state::Workload* localWorkload(const state::ProxyState& state) const;

  // ---------- HBONE connections and pool (worker_hbone.cc) ----------
  HboneConn* conn(ConnHandle h) { return conns_.get(h); }
  void poolAcquire(TunnelHandle th, Tunnel& t);
  void dial(const std::string& key, PoolEntry& entry, const HboneRoute& route);
  void serveWaiters(const std::string& key);
  void failWaiters(const std::string& key, ResponseFlag flag, const std::string& error);
  void openStream(ConnHandle ch, HboneConn& c, TunnelHandle th, Tunnel& t);
  void removeFromPool(ConnHandle ch, HboneConn& c);
  void hboneData(ConnHandle ch, HboneConn& c, std::span<const uint8_t> data);
  void hboneEof(ConnHandle ch, HboneConn& c);
  void hboneConnected(ConnHandle ch, HboneConn& c, int err);
  void hboneSent(ConnHandle ch, HboneConn& c);
  void handshakeDone(ConnHandle ch, HboneConn& c);
  void failConn(ConnHandle ch, HboneConn& c, ResponseFlag flag, const std::string& error);
  // Flushes what the session holds, sends close_notify and closes the socket once flushed.
  void closeConnGracefully(ConnHandle ch, HboneConn& c);
  void cancelTimers(HboneConn& c);
  // Draining: once no tunnel is left, closes every connection gracefully; stops the loop when
  // every socket is closed.
  void finishDrain();
  void markDirty(ConnHandle ch, HboneConn& c);
  void flushConn(ConnHandle ch, HboneConn& c);
  // The tunnel a stream callback is about and the stream's side in it; t is null if the tunnel
  // is gone (aborted meanwhile).
  struct StreamRef {
    TunnelHandle th;
    Tunnel* t = nullptr;
    int side = 0;
  };
  StreamRef streamRef(HboneConn& c, hbone::StreamId id);
  // Observer callbacks of the sessions, dispatched here by HboneConn.
  void onTunnelResponse(HboneConn& c, hbone::StreamId id, int status);
  void onConnectRequest(HboneConn& c, hbone::StreamId id, hbone::ConnectRequest&& request);
  void onStreamData(HboneConn& c, hbone::StreamId id, std::span<const uint8_t> data);
  void onStreamEnd(HboneConn& c, hbone::StreamId id);
  void onStreamReset(HboneConn& c, hbone::StreamId id, uint32_t code);
  void onStreamClosed(HboneConn& c, hbone::StreamId id);
  void onStreamWritable(HboneConn& c, hbone::StreamId id);
  void onGoaway(HboneConn& c);
  hbone::ClientSession* clientSession(const End& e);
  hbone::ServerSession* serverSession(const End& e);
  // Stream operations that work for either session role.
  Status streamSend(const End& e, ByteBuffer& data);
  size_t streamQueued(const End& e);
  void streamCloseWrite(const End& e);
  void streamReset(const End& e, uint32_t code);
  void streamConsume(const End& e, size_t n);

  // ---------- timers ----------
  enum class TimerKind : uint8_t { kHandshake = 1, kTick, kIdle, kDrain, kAcceptRetry };
  static uint64_t timerCookie(TimerKind kind, uint32_t slot, uint16_t gen) {
    return (static_cast<uint64_t>(kind) << 56) | (static_cast<uint64_t>(gen) << 32) | slot;
  }

  const ProxyInputs& inputs_;
  const ProxyConfig& config_;
  unsigned index_;
  WorkerMailbox& mailbox_;
  std::unique_ptr<io::EventLoop<WorkerMessage>> loop_;
  std::unique_ptr<io::BufRing> bufRing_;
  SocketMap sockets_;
  ConnMap conns_;
  TunnelMap tunnels_;
  std::vector<SocketHandle> listeners_;
  std::unordered_map<std::string, PoolEntry> pool_;
  // Work left for afterDispatch (see there): socket primitives never call up into owners.
  struct SentNotice {
    SocketHandle socket;
    uint32_t bytes;
  };
  struct FailedSend {
    SocketHandle socket;
    int err;
  };
  std::vector<SentNotice> sentNotices_;
  std::vector<FailedSend> failedSends_;
  std::vector<TunnelHandle> finishChecks_;
  std::vector<ConnHandle> dirtyConns_;
  std::vector<TunnelHandle> deadTunnels_;
  std::vector<ConnHandle> deadConns_;
  hbone::SessionConfig clientH2_;  // outbound pool connections
  hbone::SessionConfig serverH2_;  // inbound 15008 connections
  ByteBuffer scratch_;  // staging for bytes moved into a stream (handed over with moveFrom)
  state::FastRandom rng_;
  bool draining_ = false;
  bool closingAll_ = false;
  bool origSrcUsable_ = true;
  bool markUsable_ = true;
};

}  // namespace zt::proxy
