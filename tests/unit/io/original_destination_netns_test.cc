// originalDestination() against a real iptables REDIRECT, in a network namespace this test creates
// and always deletes (root only; skips visibly otherwise).
//
// How the namespace is entered: a dedicated std::thread calls setns(CLONE_NEWNET) on itself only
// (the network namespace is a per-thread attribute), creates its sockets there and exits; the rest
// of the test process never leaves the original namespace. The iptables rule is installed from that
// thread with system(): the forked shell inherits the thread's namespace.
//
// Topology inside namespace zt-io-test-<pid>-<test>: lo up; a veth pair zt0/zt1 (both ends in the
// namespace), zt0 with 10.99.0.1/24 and fd00:99::1/64, so 10.99.0.2 / fd00:99::2 are routable but
// nobody's; nat OUTPUT REDIRECTs
// tcp to <that>:8080 to a dual-stack listener on [::]:<port>. The client dials 10.99.0.2:8080 and
// the accepted socket must report 10.99.0.2:8080 (not 127.0.0.1:<port>) as original destination.

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "ztunnel/io/socket_options.h"

namespace zt::io {
namespace {

struct CommandResult {
  int status;
  std::string output;
};

CommandResult run(const std::string& cmd) {
  CommandResult r{-1, {}};
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    return r;
  }
  std::array<char, 512> buf;
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) {
    r.output += buf.data();
  }
  r.status = ::pclose(p);
  return r;
}

// Creates the namespace; deletes it in the destructor whatever happened in between.
class NetnsGuard {
 public:
  explicit NetnsGuard(std::string name) : name_(std::move(name)) {
    auto r = run("ip netns add " + name_);
    created_ = r.status == 0;
    error_ = r.output;
  }
  ~NetnsGuard() {
    if (created_) {
      (void)run("ip netns del " + name_);
    }
  }
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

  bool created() const { return created_; }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  // Runs `cmd` inside the namespace.
  CommandResult exec(const std::string& cmd) const {
    return run("ip netns exec " + name_ + " " + cmd);
  }

 private:
  std::string name_;
  bool created_ = false;
  std::string error_;
};

// Runs fn on a thread that has entered the namespace (only that thread).
void inNamespace(const NetnsGuard& ns, const std::function<void()>& fn) {
  std::thread t([&] {
    UniqueFd nsfd(::open(("/var/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(nsfd.valid()) << "open netns: " << errno;
    ASSERT_EQ(::setns(nsfd.get(), CLONE_NEWNET), 0) << "setns: " << errno;
    fn();
  });
  t.join();
}

class OriginalDestinationNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root to create a network namespace and iptables rules";
    }
    if (run("command -v ip && command -v iptables").status != 0) {
      GTEST_SKIP() << "ip/iptables not installed";
    }
    ns_ = std::make_unique<NetnsGuard>(
        "zt-io-test-" + std::to_string(::getpid()) + "-" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(ns_->created()) << ns_->error();
    for (const char* cmd :
         {"ip link set lo up", "ip link add zt0 type veth peer name zt1",
          "ip addr add 10.99.0.1/24 dev zt0", "ip addr add fd00:99::1/64 dev zt0 nodad",
          "ip link set zt1 up", "ip link set zt0 up"}) {
      auto r = ns_->exec(cmd);
      ASSERT_EQ(r.status, 0) << cmd << ": " << r.output;
    }
  }
  std::unique_ptr<NetnsGuard> ns_;
};

struct Observed {
  SocketAddress listener;
  SocketAddress local;
  SocketAddress original;
  std::string error;
  std::string skip;
};

// In the namespace: listener on [::]:0, REDIRECT `dialled` to it with `iptablesCmd`, connect,
// accept and ask for the original destination.
Observed redirectAndConnect(const NetnsGuard& ns, const std::string& iptablesCmd,
                            const SocketAddress& dialled, bool redirect = true) {
  Observed o;
  inNamespace(ns, [&] {
    auto l = makeListener(*SocketAddress::parse("[::]:0"));
    if (!l) {
      o.error = l.error().message();
      return;
    }
    o.listener = *localAddress(l->get());
    SocketAddress target = dialled;
    if (redirect) {
      std::string rule = iptablesCmd + " -t nat -A OUTPUT -p tcp -d " + dialled.ip().toString() +
                         " --dport " + std::to_string(dialled.port()) + " -j REDIRECT --to-ports " +
                         std::to_string(o.listener.port());
      auto r = run(rule);  // forked from this thread: runs in the namespace
      if (r.status != 0) {
        o.skip = rule + ": " + r.output;
        return;
      }
    } else {
      target.setPort(o.listener.port());
    }
    UniqueFd client(::socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss{};
    socklen_t len = target.toSockaddr(ss);
    if (::connect(client.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      o.error = "connect " + target.toString() + ": " + std::strerror(errno);
      return;
    }
    UniqueFd accepted(::accept4(l->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!accepted) {
      o.error = std::string("accept: ") + std::strerror(errno);
      return;
    }
    o.local = *localAddress(accepted.get());
    auto od = originalDestination(accepted.get());
    if (!od) {
      o.error = od.error().message();
      return;
    }
    o.original = *od;
  });
  return o;
}

TEST_F(OriginalDestinationNetns, Ipv4Redirect) {
  const SocketAddress dialled = *SocketAddress::parse("10.99.0.2:8080");
  Observed o = redirectAndConnect(*ns_, "iptables", dialled);
  if (!o.skip.empty()) {
    GTEST_SKIP() << "iptables nat unavailable: " << o.skip;
  }
  ASSERT_TRUE(o.error.empty()) << o.error;
  // The socket itself is connected to the redirect target...
  EXPECT_EQ(o.local.port(), o.listener.port());
  EXPECT_NE(o.local, dialled);
  // ...and SO_ORIGINAL_DST recovers what the client dialled, as IPv4 although the listener is
  // a dual-stack IPv6 socket.
  EXPECT_EQ(o.original, dialled);
  EXPECT_TRUE(o.original.ip().isV4());
}

TEST_F(OriginalDestinationNetns, Ipv6Redirect) {
  const SocketAddress dialled = *SocketAddress::parse("[fd00:99::2]:8080");
  Observed o = redirectAndConnect(*ns_, "ip6tables", dialled);
  if (!o.skip.empty()) {
    GTEST_SKIP() << "ip6tables nat unavailable: " << o.skip;
  }
  ASSERT_TRUE(o.error.empty()) << o.error;
  EXPECT_EQ(o.local.port(), o.listener.port());
  EXPECT_NE(o.local, dialled);
  EXPECT_EQ(o.original, dialled);
}

TEST_F(OriginalDestinationNetns, NoRedirectFallsBackToLocalAddress) {
  Observed o = redirectAndConnect(*ns_, "", *SocketAddress::parse("10.99.0.1:0"), false);
  ASSERT_TRUE(o.error.empty()) << o.error;
  EXPECT_EQ(o.original, o.local);
  EXPECT_EQ(o.original.ip().toString(), "10.99.0.1");
}

TEST(NetnsGuard, DeletesTheNamespaceEvenWhenTheTestFails) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to create a network namespace";
  }
  const std::string name = "zt-io-test-" + std::to_string(::getpid()) + "-guard";
  {
    NetnsGuard g(name);
    ASSERT_TRUE(g.created()) << g.error();
    EXPECT_EQ(run("ip netns list | grep -qw " + name).status, 0);
  }
  EXPECT_NE(run("ip netns list | grep -qw " + name).status, 0);
}

}  // namespace
}  // namespace zt::io
