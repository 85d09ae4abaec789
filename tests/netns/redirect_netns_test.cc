// Root test of ztunnel/redirect: installs the capture rules in network namespaces this test
// creates, checks the exact rule state, idempotence and clean removal, and that TCP is really
// captured: outbound to :15001 (original destination kept), inbound to :15006, :15008 and marked
// sockets untouched. Every namespace is deleted when the test ends, pass or fail.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "ztunnel/core/sockaddr.h"
#include "ztunnel/core/unique_fd.h"
#include "ztunnel/redirect/command.h"
#include "ztunnel/redirect/iptables.h"

namespace zt::redirect {
namespace {

constexpr int kSoOriginalDst = 80;      // SO_ORIGINAL_DST (linux/netfilter_ipv4.h)
constexpr int kIp6tSoOriginalDst = 80;  // IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h)

std::string uniqueName(std::string_view tag) {
  static std::atomic<int> counter{0};
  return "zt-redir-" + std::to_string(::getpid()) + "-" + std::string(tag) +
         std::to_string(counter++);
}

std::string mustRun(const std::vector<std::string>& argv, std::string_view input = {}) {
  auto r = runChecked(argv, input);
  EXPECT_TRUE(r) << r.error().message();
  return r ? *r : std::string();
}

// A named network namespace (`ip netns add`), deleted on destruction. lo is brought up.
class TestNetns {
 public:
  explicit TestNetns(std::string name) : name_(std::move(name)) {
    auto r = runChecked({"ip", "netns", "add", name_});
    if (!r) {
      error_ = r.error().message();
      return;
    }
    created_ = true;
    fd_ = UniqueFd(::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) {
      error_ = "open /run/netns/" + name_ + ": " + std::strerror(errno);
      return;
    }
    auto lo = runChecked({"ip", "-n", name_, "link", "set", "lo", "up"});
    if (!lo) {
      error_ = lo.error().message();
    }
  }
  ~TestNetns() {
    fd_.reset();
    if (created_) {
      auto r = runChecked({"ip", "netns", "del", name_});
      EXPECT_TRUE(r) << r.error().message();
    }
  }
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }

 private:
  std::string name_;
  bool created_ = false;
  UniqueFd fd_;
  std::string error_;
};

// Moves the calling thread into a namespace for the scope; child processes spawned meanwhile and
// sockets created meanwhile belong to it.
class EnterNetns {
 public:
  explicit EnterNetns(const TestNetns& ns)
      : saved_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    ok_ = saved_.valid() && ::setns(ns.fd(), CLONE_NEWNET) == 0;
  }
  ~EnterNetns() {
    if (saved_.valid() && ::setns(saved_.get(), CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "setns back: " << std::strerror(errno);
    }
  }
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;
  bool ok() const { return ok_; }

 private:
  UniqueFd saved_;
  bool ok_ = false;
};

std::optional<std::string> needsRootAndTools() {
  if (::geteuid() != 0) {
    return "needs root (creates network namespaces and iptables rules)";
  }
  for (const char* tool : {"ip", "iptables-restore", "iptables-save"}) {
    auto r = runCommand({tool, "--version"});
    if (!r) {
      return std::string(tool) + " not available: " + r.error().message();
    }
  }
  return std::nullopt;
}

// iptables-save output reduced to what matters: no comments or counters, and tables that hold
// nothing but empty ACCEPT base chains dropped (nf_tables creates those on first use, so they
// appear after install+remove although nothing was left behind).
std::string normalizedSave(const std::string& tool) {
  std::string raw = mustRun({tool});
  std::istringstream in(raw);
  std::string line, out, table;
  std::vector<std::string> tableLines;
  bool meaningful = false;
  static const std::regex counters(R"( \[\d+:\d+\]$)");
  static const std::regex baseAccept(R"(^:[A-Z]+ ACCEPT$)");
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    line = std::regex_replace(line, counters, "");
    if (line[0] == '*') {
      tableLines = {line};
      meaningful = false;
      continue;
    }
    tableLines.push_back(line);
    if (line == "COMMIT") {
      if (meaningful) {
        for (const auto& l : tableLines) {
          out += l + "\n";
        }
      }
      continue;
    }
    if (!std::regex_match(line, baseAccept)) {
      meaningful = true;
    }
  }
  return out;
}

// Whether ip6tables' nat table works in the current namespace (the v6 half of install needs it).
bool v6NatUsable() {
  auto r = runCommand({"ip6tables", "-t", "nat", "-S"});
  return r && r->exitStatus == 0;
}

struct Snapshot {
  std::string v4, v6, rules4, rules6, table4, table6;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
  friend void PrintTo(const Snapshot& s, std::ostream* os) {
    *os << "\n--- iptables\n"
        << s.v4 << "--- ip6tables\n"
        << s.v6 << "--- ip -4 rule\n"
        << s.rules4 << "--- ip -6 rule\n"
        << s.rules6 << "--- ip -4 route table 100\n"
        << s.table4 << "--- ip -6 route table 100\n"
        << s.table6;
  }
};

std::string routeTable(const std::string& family) {
  auto r = runCommand({"ip", family, "route", "show", "table", "100"});
  EXPECT_TRUE(r);
  return r && r->exitStatus == 0 ? r->out : std::string();  // v6: empty table = error
}

Snapshot snapshot() {
  Snapshot s;
  s.v4 = normalizedSave("iptables-save");
  s.v6 = normalizedSave("ip6tables-save");
  s.rules4 = mustRun({"ip", "-N", "-4", "rule", "show"});
  s.rules6 = mustRun({"ip", "-N", "-6", "rule", "show"});
  s.table4 = routeTable("-4");
  s.table6 = routeTable("-6");
  return s;
}

std::vector<std::string> chainOf(const SavedRules& saved, const std::string& table,
                                 const std::string& chain) {
  std::vector<std::string> out;
  auto it = saved.find(table);
  if (it == saved.end()) {
    return out;
  }
  for (const auto& r : it->second.rules) {
    if (r.rfind("-A " + chain + " ", 0) == 0) {
      out.push_back(r);
    }
  }
  return out;
}

void expectInstalled(IpFamily family, const RedirectOptions& o) {
  std::string save = mustRun({family == IpFamily::kV4 ? "iptables-save" : "ip6tables-save"});
  auto saved = parseIptablesSave(save);
  ASSERT_TRUE(saved) << saved.error().message();
  for (std::string table : {"mangle", "nat"}) {
    for (std::string chain : {"ISTIO_PRERT", "ISTIO_OUTPUT"}) {
      std::vector<std::string> want;
      for (const auto& r : chainRules(o, family)) {
        if (r.table == table && r.chain == chain) {
          want.push_back(r.line());
        }
      }
      EXPECT_EQ(chainOf(*saved, table, chain), want) << table << " " << chain << "\n" << save;
    }
  }
  // Foreign rules were seeded first; our jump follows them, exactly once.
  EXPECT_EQ(chainOf(*saved, "nat", "OUTPUT"),
            (std::vector<std::string>{"-A OUTPUT -p udp -j FOREIGN", "-A OUTPUT -j ISTIO_OUTPUT"}))
      << save;
  EXPECT_EQ(chainOf(*saved, "nat", "PREROUTING"),
            (std::vector<std::string>{"-A PREROUTING -j ISTIO_PRERT"}));
  EXPECT_EQ(chainOf(*saved, "mangle", "OUTPUT"),
            (std::vector<std::string>{"-A OUTPUT -p udp -j ACCEPT", "-A OUTPUT -j ISTIO_OUTPUT"}));
  EXPECT_EQ(chainOf(*saved, "mangle", "PREROUTING"),
            (std::vector<std::string>{"-A PREROUTING -j ISTIO_PRERT"}));
  EXPECT_EQ(chainOf(*saved, "nat", "FOREIGN"), (std::vector<std::string>{"-A FOREIGN -j RETURN"}));

  const std::string f = family == IpFamily::kV4 ? "-4" : "-6";
  std::string rules = mustRun({"ip", "-N", f, "rule", "show"});
  std::string want = family == IpFamily::kV4 ? "0:\tfrom all lookup 255\n"
                                               "1000:\tfrom all fwmark 0x5 lookup 200\n"
                                               "32764:\tfrom all fwmark 0x111/0xfff lookup 100\n"
                                               "32766:\tfrom all lookup 254\n"
                                               "32767:\tfrom all lookup 253\n"
                                             : "0:\tfrom all lookup 255\n"
                                               "1000:\tfrom all fwmark 0x5 lookup 200\n"
                                               "32764:\tfrom all fwmark 0x111/0xfff lookup 100\n"
                                               "32766:\tfrom all lookup 254\n";
  EXPECT_EQ(rules, want);
  std::string table = mustRun({"ip", f, "route", "show", "table", "100"});
  EXPECT_TRUE(hasLocalRoute(table)) << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 1) << table;
}

void seedForeignState() {
  // Rules that are not ours, in the tables and chains we touch; they must survive untouched.
  for (std::string save : {"iptables-restore", "ip6tables-restore"}) {
    mustRun({save, "--noflush"},
            "*nat\n:FOREIGN - [0:0]\n-A FOREIGN -j RETURN\n-A OUTPUT -p udp -j FOREIGN\nCOMMIT\n"
            "*mangle\n-A OUTPUT -p udp -j ACCEPT\nCOMMIT\n");
  }
  mustRun({"ip", "-4", "rule", "add", "fwmark", "0x5", "pref", "1000", "lookup", "200"});
  mustRun({"ip", "-6", "rule", "add", "fwmark", "0x5", "pref", "1000", "lookup", "200"});
}

TEST(RedirectNetns, InstallIsExactIdempotentAndRemoveRestoresState) {
  if (auto why = needsRootAndTools()) {
    GTEST_SKIP() << *why;
  }
  TestNetns ns(uniqueName("s"));
  ASSERT_TRUE(ns.ok()) << ns.error();
  EnterNetns enter(ns);
  ASSERT_TRUE(enter.ok()) << std::strerror(errno);

  seedForeignState();
  const Snapshot before = snapshot();
  ASSERT_NE(before.v4.find("FOREIGN"), std::string::npos) << before.v4;

  RedirectOptions o;
  auto st = install(o);
  ASSERT_TRUE(st) << st.error().message();
  expectInstalled(IpFamily::kV4, o);
  if (v6NatUsable()) {
    expectInstalled(IpFamily::kV6, o);
  }
  const Snapshot installed = snapshot();

  st = install(o);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(snapshot(), installed) << "second install changed the state";

  st = remove(o);
  ASSERT_TRUE(st) << st.error().message();
  Snapshot after = snapshot();
  EXPECT_EQ(after.v4, before.v4);
  EXPECT_EQ(after.v6, before.v6);
  EXPECT_EQ(after.rules4, before.rules4);
  EXPECT_EQ(after.rules6, before.rules6);
  EXPECT_EQ(after.table4, before.table4);
  EXPECT_EQ(after.table6, before.table6);

  st = remove(o);
  ASSERT_TRUE(st) << "remove when already removed: " << st.error().message();
  EXPECT_EQ(snapshot(), after);
}

TEST(RedirectNetns, V6SkippedWhenDisabled) {
  if (auto why = needsRootAndTools()) {
    GTEST_SKIP() << *why;
  }
  TestNetns ns(uniqueName("n"));
  ASSERT_TRUE(ns.ok()) << ns.error();
  EnterNetns enter(ns);
  ASSERT_TRUE(enter.ok());
  mustRun({"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"});
  mustRun({"sysctl", "-q", "-w", "net.ipv6.conf.lo.disable_ipv6=1"});
  RedirectOptions o;
  auto st = install(o);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_NE(normalizedSave("iptables-save").find("ISTIO_OUTPUT"), std::string::npos);
  EXPECT_EQ(normalizedSave("ip6tables-save").find("ISTIO_OUTPUT"), std::string::npos);
  st = remove(o);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(normalizedSave("iptables-save"), "");
  EXPECT_FALSE(hasIpRule(mustRun({"ip", "-N", "-4", "rule", "show"}), o));
  EXPECT_FALSE(hasLocalRoute(mustRun({"ip", "-4", "route", "show", "table", "100"})));
}

TEST(RedirectNetns, FailedInstallRollsBack) {
  if (auto why = needsRootAndTools()) {
    GTEST_SKIP() << *why;
  }
  TestNetns ns(uniqueName("f"));
  ASSERT_TRUE(ns.ok()) << ns.error();
  EnterNetns enter(ns);
  ASSERT_TRUE(enter.ok());
  if (!v6NatUsable()) {
    GTEST_SKIP() << "needs ip6tables nat to provoke a failure after the IPv4 half";
  }
  // lo down: the v4 iptables rules and ip rule apply, the IPv6 local route cannot ("Nexthop device
  // is not up"); everything applied before must be undone.
  mustRun({"ip", "link", "set", "lo", "down"});
  RedirectOptions o;
  auto st = install(o);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("rolled back"), std::string::npos) << st.error().message();
  EXPECT_EQ(normalizedSave("iptables-save"), "");
  EXPECT_EQ(normalizedSave("ip6tables-save"), "");
  EXPECT_FALSE(hasIpRule(mustRun({"ip", "-N", "-4", "rule", "show"}), o));
  EXPECT_FALSE(hasLocalRoute(mustRun({"ip", "-4", "route", "show", "table", "100"})));
}

// --- Functional capture check ----------------------------------------------------------------

UniqueFd listenOn(const SocketAddress& addr) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return fd;
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.family() == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  sockaddr_storage ss{};
  socklen_t len = addr.toSockaddr(ss);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), 16) != 0) {
    ADD_FAILURE() << "bind/listen " << addr.toString() << ": " << std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

UniqueFd connectTo(const SocketAddress& addr, uint32_t mark = 0) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return fd;
  }
  if (mark != 0 && ::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    ADD_FAILURE() << "SO_MARK: " << std::strerror(errno);
  }
  sockaddr_storage ss{};
  socklen_t len = addr.toSockaddr(ss);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    ADD_FAILURE() << "connect " << addr.toString() << ": " << std::strerror(errno);
  }
  return fd;
}

// Waits (bounded) for a connection on `listener`; returns its original destination (or its local
// address when it was not NATed).
std::optional<SocketAddress> acceptOne(int listener, int timeoutMs = 5000) {
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, timeoutMs) != 1) {
    return std::nullopt;
  }
  UniqueFd conn(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) {
    return std::nullopt;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  sockaddr_storage local{};
  socklen_t localLen = sizeof local;
  ::getsockname(conn.get(), reinterpret_cast<sockaddr*>(&local), &localLen);
  int rc = local.ss_family == AF_INET
               ? ::getsockopt(conn.get(), SOL_IP, kSoOriginalDst, &ss, &len)
               : ::getsockopt(conn.get(), SOL_IPV6, kIp6tSoOriginalDst, &ss, &len);
  if (rc != 0) {
    return SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&local), localLen);
  }
  return SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

SocketAddress sa(const char* text) {
  auto a = SocketAddress::parse(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(SocketAddress());
}

TEST(RedirectNetns, CapturesTcpLikeIstioCni) {
  if (auto why = needsRootAndTools()) {
    GTEST_SKIP() << *why;
  }
  // "pod" holds the rules (and ztunnel's listeners); "peer" is another host on a veth.
  TestNetns pod(uniqueName("p"));
  ASSERT_TRUE(pod.ok()) << pod.error();
  TestNetns peer(uniqueName("q"));
  ASSERT_TRUE(peer.ok()) << peer.error();
  const std::string vethPod = "ztr" + std::to_string(::getpid() % 100000) + "a";
  const std::string vethPeer = "ztr" + std::to_string(::getpid() % 100000) + "b";
  mustRun({"ip", "link", "add", vethPod, "netns", pod.name(), "type", "veth", "peer", "name",
           vethPeer, "netns", peer.name()});
  mustRun({"ip", "-n", pod.name(), "addr", "add", "198.18.0.1/24", "dev", vethPod});
  mustRun({"ip", "-n", peer.name(), "addr", "add", "198.18.0.2/24", "dev", vethPeer});
  mustRun({"ip", "-n", pod.name(), "addr", "add", "2001:db8::1/64", "dev", vethPod, "nodad"});
  mustRun({"ip", "-n", peer.name(), "addr", "add", "2001:db8::2/64", "dev", vethPeer, "nodad"});
  mustRun({"ip", "-n", pod.name(), "link", "set", vethPod, "up"});
  mustRun({"ip", "-n", peer.name(), "link", "set", vethPeer, "up"});

  // Peer-side listeners: a marked (ztunnel) connection from the pod must reach them directly.
  UniqueFd peerApp, peerApp6, peerClientIn, peerClientHbone;
  {
    EnterNetns in(peer);
    ASSERT_TRUE(in.ok());
    peerApp = listenOn(sa("198.18.0.2:8080"));
    peerApp6 = listenOn(sa("[2001:db8::2]:8080"));
  }
  EnterNetns in(pod);
  ASSERT_TRUE(in.ok());
  const bool v6 = v6NatUsable();
  RedirectOptions o;
  auto st = install(o);
  ASSERT_TRUE(st) << st.error().message();

  UniqueFd outbound = listenOn(sa("0.0.0.0:15001"));
  UniqueFd outbound6 = listenOn(sa("[::]:15001"));
  UniqueFd inboundPlain = listenOn(sa("0.0.0.0:15006"));
  UniqueFd inboundHbone = listenOn(sa("0.0.0.0:15008"));
  UniqueFd localApp = listenOn(sa("127.0.0.1:8081"));
  ASSERT_TRUE(outbound && outbound6 && inboundPlain && inboundHbone && localApp);

  // 1. The pod's outbound TCP lands on 15001 with its original destination.
  UniqueFd c1 = connectTo(sa("198.18.0.2:8080"));
  auto got = acceptOne(outbound.get());
  ASSERT_TRUE(got) << "outbound connection was not redirected to 15001";
  EXPECT_EQ(got->toString(), "198.18.0.2:8080");
  UniqueFd c1v6;
  if (v6) {
    c1v6 = connectTo(sa("[2001:db8::2]:8080"));
    got = acceptOne(outbound6.get());
    ASSERT_TRUE(got) << "IPv6 outbound connection was not redirected to [::]:15001";
    EXPECT_EQ(got->toString(), "[2001:db8::2]:8080");
  }

  // 2. A socket with ztunnel's mark is not captured: it reaches the peer.
  UniqueFd c2 = connectTo(sa("198.18.0.2:8080"), o.packetMark);
  {
    // peerApp lives in the peer namespace; accept works from any namespace.
    got = acceptOne(peerApp.get());
    ASSERT_TRUE(got) << "marked connection did not reach the peer";
    EXPECT_EQ(got->toString(), "198.18.0.2:8080");
  }
  UniqueFd c2v6 = connectTo(sa("[2001:db8::2]:8080"), o.packetMark);
  got = acceptOne(peerApp6.get());
  ASSERT_TRUE(got) << "marked IPv6 connection did not reach the peer";
  EXPECT_FALSE(acceptOne(outbound6.get(), 0));

  // 3. Loopback traffic to 127.0.0.1 is left alone.
  UniqueFd c3 = connectTo(sa("127.0.0.1:8081"));
  got = acceptOne(localApp.get());
  ASSERT_TRUE(got) << "loopback connection did not reach its listener";
  EXPECT_EQ(got->toString(), "127.0.0.1:8081");

  // 4. Inbound from the peer: any port but 15008 goes to 15006; 15008 is not redirected.
  {
    EnterNetns inPeer(peer);
    ASSERT_TRUE(inPeer.ok());
    peerClientIn = connectTo(sa("198.18.0.1:80"));
    peerClientHbone = connectTo(sa("198.18.0.1:15008"));
  }
  got = acceptOne(inboundPlain.get());
  ASSERT_TRUE(got) << "inbound connection was not redirected to 15006";
  EXPECT_EQ(got->toString(), "198.18.0.1:80");
  got = acceptOne(inboundHbone.get());
  ASSERT_TRUE(got) << "inbound HBONE connection did not reach 15008";
  EXPECT_EQ(got->toString(), "198.18.0.1:15008");

  // Nothing else arrived where it should not have.
  EXPECT_FALSE(acceptOne(outbound.get(), 0));
  EXPECT_FALSE(acceptOne(inboundPlain.get(), 0));

  st = remove(o);
  ASSERT_TRUE(st) << st.error().message();
  // Without the rules, outbound goes straight to the peer.
  UniqueFd c4 = connectTo(sa("198.18.0.2:8080"));
  got = acceptOne(peerApp.get());
  ASSERT_TRUE(got) << "after remove, outbound did not reach the peer directly";
  EXPECT_FALSE(acceptOne(outbound.get(), 0));
}

}  // namespace
}  // namespace zt::redirect
