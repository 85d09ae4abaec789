// tcp_probe: the end-to-end harness's traffic tool. Plain blocking sockets, nothing of ztunnel's.
//
//   tcp_probe serve   --listen ADDR                       echo server (epoll, one thread)
//   tcp_probe rr      --connect ADDR [--count N] [--size B] [--warmup N]
//        one connection, N request/response round trips of B bytes; prints RTT percentiles
//   tcp_probe connect --connect ADDR [--count N] [--concurrency C] [--size B]
//        N times: connect, send B bytes, read them back, close; prints latency percentiles
//        (connect to first byte back) and the rate, with C connections in parallel
//
// Output is one JSON object per run on stdout; errors go to stderr with a non-zero exit.
// Every loop is bounded by --count and by --timeout seconds.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "tcp_probe: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "tcp_probe: %s\nusage: tcp_probe serve --listen ADDR\n"
               "       tcp_probe rr --connect ADDR [--count N] [--size B] [--warmup N]\n"
               "       tcp_probe connect --connect ADDR [--count N] [--concurrency C] [--size B]\n"
               "ADDR is ip:port or [v6]:port; --timeout S bounds every run (default 60)\n",
               msg);
  std::exit(2);
}

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

Addr parseAddr(const std::string& text) {
  Addr a;
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 2 > text.size()) {
      usage("bad address");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      usage("bad address");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  int p = std::atoi(port.c_str());
  if (p <= 0 || p > 65535) {
    usage("bad port");
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(p));
    a.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(p));
    a.len = sizeof(sockaddr_in6);
  } else {
    usage("bad host");
  }
  return a;
}

int connectTo(const Addr& a) {
  int fd = ::socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    die("socket");
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool writeAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool readAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) {
    return 0;
  }
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(idx), v.end());
  return v[idx];
}

void printLatency(const char* mode, std::vector<double>& us, double seconds, size_t errors) {
  size_t n = us.size();
  double p50 = percentile(us, 50);
  double p90 = percentile(us, 90);
  double p99 = percentile(us, 99);
  double max = n ? *std::max_element(us.begin(), us.end()) : 0;
  std::printf(
      "{\"mode\":\"%s\",\"count\":%zu,\"errors\":%zu,\"seconds\":%.3f,\"rate_per_s\":%.1f,"
      "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
      mode, n, errors, seconds, seconds > 0 ? static_cast<double>(n) / seconds : 0.0, p50, p90,
      p99, max);
}

int serve(const Addr& a) {
  int lfd = ::socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (lfd < 0) {
    die("socket");
  }
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(lfd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
    die("bind");
  }
  if (::listen(lfd, 4096) != 0) {
    die("listen");
  }
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  // Per connection: bytes read but not yet echoed (the peer may not be reading).
  std::unordered_map<int, std::string> pending;
  std::vector<char> buf(256 * 1024);
  epoll_event events[256];
  auto closeConn = [&](int fd) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    pending.erase(fd);
  };
  for (;;) {
    int n = ::epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) {
            break;
          }
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          pending[c];
        }
        continue;
      }
      auto& out = pending[fd];
      bool closed = false;
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        // Read only while nothing is queued, so a non-reading peer bounds our memory.
        while (out.empty()) {
          ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
          if (r > 0) {
            ssize_t w = ::send(fd, buf.data(), static_cast<size_t>(r), MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
              closed = true;
              break;
            }
            w = std::max<ssize_t>(w, 0);
            if (w < r) {
              out.assign(buf.data() + w, static_cast<size_t>(r - w));
            }
            continue;
          }
          if (r == 0) {
            // Peer finished sending: finish echoing, then half-close our side.
            if (out.empty()) {
              ::shutdown(fd, SHUT_WR);
              closed = true;
            }
          } else if (errno != EAGAIN) {
            closed = true;
          }
          break;
        }
      }
      if (!closed && (events[i].events & EPOLLOUT) && !out.empty()) {
        ssize_t w = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (w > 0) {
          out.erase(0, static_cast<size_t>(w));
        } else if (w < 0 && errno != EAGAIN) {
          closed = true;
        }
      }
      if (closed) {
        closeConn(fd);
        continue;
      }
      epoll_event cev{};
      cev.events = EPOLLRDHUP | (out.empty() ? EPOLLIN : EPOLLOUT);
      cev.data.fd = fd;
      ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
    }
  }
}

int requestResponse(const Addr& a, size_t count, size_t size, size_t warmup, double timeout) {
  int fd = connectTo(a);
  if (fd < 0) {
    die("connect");
  }
  std::string msg(size, 'x');
  std::string back(size, '\0');
  std::vector<double> us;
  us.reserve(count);
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
  auto start = Clock::now();
  for (size_t i = 0; i < warmup + count && Clock::now() < deadline; ++i) {
    auto t0 = Clock::now();
    if (!writeAll(fd, msg.data(), size) || !readAll(fd, back.data(), size)) {
      die("round trip");
    }
    if (i >= warmup) {
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    if (i + 1 == warmup) {
      start = Clock::now();
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(fd);
  printLatency("rr", us, secs, 0);
  return us.size() == count ? 0 : 1;
}

int connectRate(const Addr& a, size_t count, size_t concurrency, size_t size, double timeout) {
  std::atomic<size_t> next{0};
  std::atomic<size_t> errors{0};
  std::vector<std::vector<double>> perThread(concurrency);
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      std::string msg(size, 'y');
      std::string back(size, '\0');
      while (next.fetch_add(1) < count && Clock::now() < deadline) {
        auto t0 = Clock::now();
        int fd = connectTo(a);
        if (fd < 0 || !writeAll(fd, msg.data(), size) || !readAll(fd, back.data(), size)) {
          errors.fetch_add(1);
          if (fd >= 0) {
            ::close(fd);
          }
          continue;
        }
        perThread[t].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        ::close(fd);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : perThread) {
    all.insert(all.end(), v.begin(), v.end());
  }
  printLatency("connect", all, secs, errors.load());
  return errors.load() == 0 && all.size() == count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage("missing mode");
  }
  std::string mode = argv[1];
  std::string listen;
  std::string connect;
  size_t count = 1000;
  size_t size = 1;
  size_t warmup = 100;
  size_t concurrency = 1;
  double timeout = 60;
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) {
      usage(("missing value for " + flag).c_str());
    }
    std::string value = argv[++i];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--connect") {
      connect = value;
    } else if (flag == "--count") {
      count = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--size") {
      size = std::max<size_t>(1, std::strtoull(value.c_str(), nullptr, 10));
    } else if (flag == "--warmup") {
      warmup = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--concurrency") {
      concurrency = std::max<size_t>(1, std::strtoull(value.c_str(), nullptr, 10));
    } else if (flag == "--timeout") {
      timeout = std::strtod(value.c_str(), nullptr);
    } else {
      usage(("unknown flag " + flag).c_str());
    }
  }
  if (mode == "serve") {
    if (listen.empty()) {
      usage("serve needs --listen");
    }
    return serve(parseAddr(listen));
  }
  if (connect.empty()) {
    usage("needs --connect");
  }
  if (mode == "rr") {
    return requestResponse(parseAddr(connect), count, size, warmup, timeout);
  }
  if (mode == "connect") {
    return connectRate(parseAddr(connect), count, concurrency, size, timeout);
  }
  usage("unknown mode");
}
