#pragma once

// A loopback echo server built only from the io module's pieces (EventLoop, Ring prep helpers,
// multishot accept, multishot recv into a BufRing, sendmsg straight from the received buffers,
// SlotMap + tokens, close), and a poll()-based client that checks the echo byte for byte.
// Header-only; used by tests/unit/io/echo_test.cc and bench/io_bench.cc. It is also the smallest
// worked example of the lifetime rule in event_loop.h.

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "ztunnel/core/sockaddr.h"
#include "ztunnel/core/unique_fd.h"
#include "ztunnel/io/buf_ring.h"
#include "ztunnel/io/event_loop.h"
#include "ztunnel/io/slot_map.h"
#include "ztunnel/io/user_data.h"

namespace zt::io::iotest {

// The echo server's mailbox message: "stop accepting and close everything".
struct EchoShutdown {};

class EchoServer {
 public:
  static constexpr size_t kMaxIov = 16;

  struct Stats {
    uint64_t accepted = 0;
    uint64_t closed = 0;
    uint64_t bytes = 0;
    uint64_t enobufs = 0;
    uint64_t recvRearms = 0;
    uint64_t partialSends = 0;
  };

  EchoServer(EventLoop<EchoShutdown>& loop, BufRing& bufs, int listenFd)
      : loop_(loop), ring_(loop.ring()), bufs_(bufs), listenFd_(listenFd) {}

  void start() { armAccept(); }
  // Cancels the accept; connections finish normally. Call from the loop thread.
  void stopAccepting() {
    if (!stopping_) {
      stopping_ = true;
      ring_.prepCancelFd(listenFd_, Token{Op::kCancel, 1, 0, kListenerSlot});
    }
  }

  const Stats& stats() const { return stats_; }
  size_t liveConnections() const { return conns_.size(); }
  uint64_t staleCompletions() const { return conns_.staleCompletions(); }
  bool acceptArmed() const { return acceptArmed_; }

  // --- EventLoop handler ---
  void onCompletion(Token t, int32_t res, uint32_t flags) {
    switch (t.op) {
      case Op::kAccept:
        onAccept(res, flags);
        return;
      case Op::kCancel:
        if (t.slot == kListenerSlot) {
          return;
        }
        break;
      default:
        break;
    }
    Conn* c = conns_.resolve(t);
    if (c == nullptr) {
      return;  // stale: dropped (and counted by the SlotMap)
    }
    switch (t.op) {
      case Op::kRecv:
        onRecv(*c, t, res, flags);
        break;
      case Op::kSend:
        onSend(*c, res);
        break;
      case Op::kCancel:
        --c->inflight;
        break;
      case Op::kClose:
        --c->inflight;
        ++stats_.closed;
        break;
      default:
        break;
    }
    maybeRelease(*c, t);
  }
  void onTimer(uint64_t) {}
  void onMessage(EchoShutdown&&) { stopAccepting(); }
  void afterDispatch() {
    bufs_.flush();
    bufs_.rearmParked([&](Token t) {
      Conn* c = conns_.get(t.slot, t.gen);
      if (c != nullptr && !c->closing && !c->eof) {
        armRecv(*c);
        ++stats_.recvRearms;
      }
    });
    // Deferred free: the batch that completed a connection's last operation is over.
    for (const auto& h : toFree_) {
      conns_.erase(h);
    }
    toFree_.clear();
  }

 private:
  static constexpr uint32_t kListenerSlot = UINT32_MAX - 1;

  struct Conn {
    explicit Conn(int f) : fd(f) {}
    int fd;
    SlotMap<Conn>::Handle handle;
    std::deque<BufRef> queue;  // received, not yet echoed
    int inflight = 0;          // operations submitted and not completed
    bool recvArmed = false;
    bool sending = false;
    bool eof = false;
    bool failed = false;
    bool closing = false;
    iovec iov[kMaxIov];
    msghdr mh{};
  };

  void armAccept() {
    ring_.prepAcceptMultishot(listenFd_, Token{Op::kAccept, 0, 0, kListenerSlot});
    acceptArmed_ = true;
  }

  void onAccept(int32_t res, uint32_t flags) {
    if (!hasMore(flags)) {
      acceptArmed_ = false;
      if (!stopping_) {
        armAccept();  // the kernel ended the multishot (error or overflow): re-arm
      }
    }
    if (res < 0) {
      return;  // -ECANCELED after stopAccepting(); EMFILE etc. would be counted and shed here
    }
    auto h = conns_.emplace(res);
    Conn& c = *conns_.get(h);
    c.handle = h;
    ++stats_.accepted;
    armRecv(c);
  }

  void armRecv(Conn& c) {
    ring_.prepRecvMultishot(c.fd, bufs_.groupId(), SlotMap<Conn>::tokenFor(c.handle, Op::kRecv));
    c.recvArmed = true;
    ++c.inflight;
  }

  void onRecv(Conn& c, Token t, int32_t res, uint32_t flags) {
    if (auto ref = bufs_.takeFromCqe(res, flags); ref && res > 0) {
      stats_.bytes += static_cast<uint64_t>(res);
      c.queue.push_back(std::move(*ref));
    }
    if (!hasMore(flags)) {
      c.recvArmed = false;
      --c.inflight;
      if (res > 0 && !c.closing) {
        armRecv(c);
        ++stats_.recvRearms;
      } else if (res == -ENOBUFS) {
        ++stats_.enobufs;
        bufs_.park(t);  // re-armed from afterDispatch() once buffers are back
      } else if (res == 0) {
        c.eof = true;
      } else if (res < 0) {
        c.eof = true;
        c.failed = res != -ECANCELED;
      }
    }
    trySend(c);
  }

  void trySend(Conn& c) {
    if (c.sending || c.queue.empty() || c.failed) {
      return;
    }
    size_t n = 0;
    for (auto it = c.queue.begin(); it != c.queue.end() && n < kMaxIov; ++it, ++n) {
      auto span = it->data();
      c.iov[n] = iovec{const_cast<uint8_t*>(span.data()), span.size()};
    }
    c.mh = msghdr{};
    c.mh.msg_iov = c.iov;
    c.mh.msg_iovlen = n;
    ring_.prepSendmsg(c.fd, &c.mh, SlotMap<Conn>::tokenFor(c.handle, Op::kSend));
    c.sending = true;
    ++c.inflight;
  }

  void onSend(Conn& c, int32_t res) {
    c.sending = false;
    --c.inflight;
    if (res < 0) {
      c.failed = true;
      c.queue.clear();
      if (c.recvArmed) {
        ring_.prepCancelFd(c.fd, SlotMap<Conn>::tokenFor(c.handle, Op::kCancel));
        ++c.inflight;
      }
      return;
    }
    size_t left = static_cast<size_t>(res);
    size_t offered = 0;
    for (size_t i = 0; i < c.mh.msg_iovlen; ++i) {
      offered += c.iov[i].iov_len;
    }
    if (left < offered) {
      ++stats_.partialSends;
    }
    while (left > 0) {
      BufRef& front = c.queue.front();
      size_t take = std::min(left, front.size());
      front.consume(take);
      left -= take;
      if (front.empty()) {
        c.queue.pop_front();  // recycles the buffer
      }
    }
    trySend(c);
  }

  // Closes once both directions are done, and frees the slot once nothing is in flight.
  void maybeRelease(Conn& c, Token) {
    const bool drained = !c.sending && (c.queue.empty() || c.failed);
    if (!c.closing && (c.eof || c.failed) && !c.recvArmed && drained) {
      c.closing = true;
      c.queue.clear();
      ring_.prepClose(c.fd, SlotMap<Conn>::tokenFor(c.handle, Op::kClose));
      ++c.inflight;
    }
    if (c.closing && c.inflight == 0) {
      toFree_.push_back(c.handle);
    }
  }

  EventLoop<EchoShutdown>& loop_;
  Ring& ring_;
  BufRing& bufs_;
  int listenFd_;
  bool stopping_ = false;
  bool acceptArmed_ = false;
  SlotMap<Conn> conns_;
  std::vector<SlotMap<Conn>::Handle> toFree_;
  Stats stats_;
};

// Blocking-free client side over plain sockets and poll(): N connections each send a
// deterministic byte stream and check the echo.
class EchoClients {
 public:
  // Byte `offset` of connection `conn`'s stream: a hash, so reordering or duplication shows.
  static uint8_t patternByte(size_t conn, uint64_t offset) {
    uint64_t x = (offset >> 3) * 0x9e3779b97f4a7c15ull + conn * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 29;
    return static_cast<uint8_t>(x >> (8 * (offset & 7)));
  }

  bool connect(const SocketAddress& addr, size_t n, std::string* err) {
    sockaddr_storage ss{};
    socklen_t len = addr.toSockaddr(ss);
    for (size_t i = 0; i < n; ++i) {
      UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        *err = std::string("connect: ") + std::strerror(errno);
        return false;
      }
      int one = 1;
      ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
      conns_.push_back(Conn{std::move(fd)});
      ::fcntl(conns_.back().fd.get(), F_SETFL, O_NONBLOCK);
    }
    return true;
  }

  // Every connection sends bytes[i] more bytes and reads their echo (checked if `verify`).
  bool roundTrip(const std::vector<uint64_t>& bytes, bool verify, std::chrono::seconds timeout,
                 std::string* err) {
    for (size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].sendTarget += bytes[i];
      conns_[i].recvTarget += bytes[i];
    }
    return pump(verify, false, timeout, err);
  }
  bool roundTrip(uint64_t bytesEach, bool verify, std::chrono::seconds timeout, std::string* err) {
    return roundTrip(std::vector<uint64_t>(conns_.size(), bytesEach), verify, timeout, err);
  }

  // Half-closes every connection and waits for the server to close its side (EOF).
  bool finish(std::chrono::seconds timeout, std::string* err) {
    for (auto& c : conns_) {
      ::shutdown(c.fd.get(), SHUT_WR);
    }
    return pump(false, true, timeout, err);
  }

  uint64_t received() const {
    uint64_t n = 0;
    for (auto& c : conns_) {
      n += c.recvOff;
    }
    return n;
  }

 private:
  struct Conn {
    UniqueFd fd;
    uint64_t sendOff = 0;
    uint64_t recvOff = 0;
    uint64_t sendTarget = 0;
    uint64_t recvTarget = 0;
    bool eof = false;
  };

  bool pump(bool verify, bool untilEof, std::chrono::seconds timeout, std::string* err) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<uint8_t> buf(256 * 1024);
    std::vector<pollfd> pfds(conns_.size());
    while (true) {
      size_t active = 0;
      for (size_t i = 0; i < conns_.size(); ++i) {
        Conn& c = conns_[i];
        short ev = 0;
        if (c.sendOff < c.sendTarget) {
          ev |= POLLOUT;
        }
        if ((untilEof && !c.eof) || c.recvOff < c.recvTarget) {
          ev |= POLLIN;
        }
        pfds[i] = pollfd{ev != 0 ? c.fd.get() : -1, ev, 0};
        active += ev != 0 ? 1 : 0;
      }
      if (active == 0) {
        return true;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        *err = "timed out; received " + std::to_string(received());
        return false;
      }
      int rc =
          ::poll(pfds.data(), pfds.size(), static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (rc < 0 && errno != EINTR) {
        *err = std::string("poll: ") + std::strerror(errno);
        return false;
      }
      for (size_t i = 0; i < conns_.size(); ++i) {
        Conn& c = conns_[i];
        if (pfds[i].revents & POLLOUT) {
          size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), c.sendTarget - c.sendOff));
          if (verify) {  // benchmarks send whatever is in the buffer
            for (size_t k = 0; k < n; ++k) {
              buf[k] = patternByte(i, c.sendOff + k);
            }
          }
          ssize_t w = ::send(c.fd.get(), buf.data(), n, MSG_NOSIGNAL);
          if (w > 0) {
            c.sendOff += static_cast<uint64_t>(w);
          } else if (w < 0 && errno != EAGAIN) {
            *err = std::string("send: ") + std::strerror(errno);
            return false;
          }
        }
        if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t r = ::recv(c.fd.get(), buf.data(), buf.size(), 0);
          if (r > 0) {
            if (verify) {
              for (ssize_t k = 0; k < r; ++k) {
                if (buf[k] != patternByte(i, c.recvOff + k)) {
                  *err = "connection " + std::to_string(i) + ": wrong byte at offset " +
                         std::to_string(c.recvOff + k);
                  return false;
                }
              }
            }
            c.recvOff += static_cast<uint64_t>(r);
            if (c.recvOff > c.recvTarget) {
              *err = "connection " + std::to_string(i) + ": more bytes echoed than sent";
              return false;
            }
          } else if (r == 0) {
            c.eof = true;
            if (c.recvOff < c.recvTarget) {
              *err =
                  "connection " + std::to_string(i) + ": early EOF at " + std::to_string(c.recvOff);
              return false;
            }
          } else if (errno != EAGAIN) {
            *err = std::string("recv: ") + std::strerror(errno);
            return false;
          }
        }
      }
    }
  }

  std::vector<Conn> conns_;
};

}  // namespace zt::io::iotest
