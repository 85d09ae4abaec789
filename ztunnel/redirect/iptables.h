#pragma once

// Capture rules for dedicated mode, applied in the CURRENT network namespace and shaped like
// istio-cni's in-pod rules (REDIRECT flavour, spec §5.3), so a ztunnel that marks its own sockets
// with the packet mark (0x539) sees the namespace's TCP through its listeners:
//
//   mangle PREROUTING -> ISTIO_PRERT:  -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark
//   0x111/0xfff nat    PREROUTING -> ISTIO_PRERT:  ! -d 127.0.0.1/32 -p tcp ! --dport 15008, not
//   marked
//                                      -> REDIRECT --to-ports 15006
//   mangle OUTPUT     -> ISTIO_OUTPUT: connmark 0x111/0xfff -> CONNMARK --restore-mark
//   nat    OUTPUT     -> ISTIO_OUTPUT: connmark'd TCP ACCEPT; ! -d 127.0.0.1/32 -o lo ACCEPT;
//                                      ! -d 127.0.0.1/32 -p tcp, not marked -> REDIRECT 15001
//   ip rule fwmark 0x111/0xfff pref 32764 lookup 100; ip route local 0.0.0.0/0 dev lo table 100
//   (and the IPv6 equivalents with ip6tables / ip -6 when enabled and ip6tables nat works).
//
// Rules are applied with `iptables-restore --noflush` (atomic per table set) and `ip`. Install is
// idempotent: declaring our chains flushes and refills them, and the base-chain jumps are added
// only when missing. Remove deletes our jumps, our chains, the ip rule and the route, and nothing
// else; it succeeds when there is nothing to remove.
//
// All functions block on child processes (seconds at most); call them from a control thread or the
// CLI. Not thread-safe against concurrent rule changes by other programs (iptables-restore is
// atomic per invocation, but the read-modify-write of install/remove is not).

#include <cstdint>
#include <iosfwd>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/result.h"
#include "ztunnel/redirect/command.h"

namespace zt::redirect {

enum class Action { kInstall, kRemove };
enum class IpFamily { kV4, kV6 };

inline constexpr std::string_view kPreroutingChain = "ISTIO_PRERT";
inline constexpr std::string_view kOutputChain = "ISTIO_OUTPUT";

struct RedirectOptions {
  Action action = Action::kInstall;
  uint16_t outboundPort = 15001;          // REDIRECT target for the namespace's outgoing TCP
  uint16_t inboundPlaintextPort = 15006;  // REDIRECT target for incoming TCP
  uint16_t inboundHbonePort = 15008;      // incoming TCP to this port is not redirected
  uint32_t packetMark = 0x539;            // ztunnel's SO_MARK (PACKET_MARK, 1337)
  uint32_t connMark = 0x111;              // istio-cni's InpodTProxyMark
  uint32_t markMask = 0xfff;              // mask for both marks
  uint32_t routeTable = 100;
  uint32_t rulePriority = 32764;
  bool ipv6 = true;  // also apply the v6 rules (skipped with a log line when ip6tables nat fails)
  bool dryRun = false;  // print what would be applied; change nothing
  friend bool operator==(const RedirectOptions&, const RedirectOptions&) = default;
};

// Checks ports non-zero and distinct, marks within the mask and non-zero, table 1..2^31-1 and not
// a reserved one (253 default, 254 main, 255 local), priority 1..32765.
Status validate(const RedirectOptions& options);

// One iptables rule in iptables-save syntax: "-A <chain> <spec>".
struct Rule {
  std::string table;  // "mangle" or "nat"
  std::string chain;
  std::string spec;  // everything after "-A <chain> "
  std::string line() const { return "-A " + chain + " " + spec; }
  friend bool operator==(const Rule&, const Rule&) = default;
};

// The jumps from the base chains into ours, in the order install appends them.
std::vector<Rule> jumpRules();
// The contents of our chains, in order, written as iptables-save prints them (so a saved ruleset
// can be compared line by line).
std::vector<Rule> chainRules(const RedirectOptions& options, IpFamily family);

// What `iptables-save` reports, per table: user chains declared and rules ("-A ..." lines) in
// order. Comments, counters and base-chain policies are ignored.
struct SavedTable {
  std::set<std::string> chains;  // every chain declared (":NAME POLICY [p:b]"), base chains too
  std::vector<std::string> rules;
};
using SavedRules = std::map<std::string, SavedTable>;
Result<SavedRules> parseIptablesSave(std::string_view text);

// iptables-restore --noflush input that (re)creates our chains with their rules and adds the
// jumps missing from `current`.
std::string installScript(const RedirectOptions& options, IpFamily family,
                          const SavedRules& current);
// iptables-restore --noflush input that deletes every copy of our jumps and our chains present in
// `current`; empty when there is nothing to remove.
std::string removeScript(const SavedRules& current);

// The `ip` arguments (without the leading "ip") for the policy route.
std::vector<std::string> ipRuleArgs(const RedirectOptions& options, IpFamily family,
                                    std::string_view verb);  // verb: "add" or "del"
std::vector<std::string> ipRouteArgs(const RedirectOptions& options, IpFamily family,
                                     std::string_view verb);  // "replace" or "del"
// True if `ip rule show` output contains our rule (at our priority, our mark, our table).
bool hasIpRule(std::string_view ipRuleShow, const RedirectOptions& options);
// True if `ip route show table N` output contains our local default route via lo.
bool hasLocalRoute(std::string_view ipRouteShow);

// Applies or removes the rules in the current network namespace (see the file comment). On an
// install failure, what was applied so far is removed again (best effort) before the error is
// returned.
Status install(const RedirectOptions& options);
Status remove(const RedirectOptions& options);

// Text describing what install/remove would run (iptables-restore input and ip commands), as if
// nothing was installed yet (install) or everything was (remove).
std::string dryRunText(const RedirectOptions& options);

// The `ztunnel redirect install|remove` entry point: validates, then dry-runs (printing to `out`)
// or installs/removes.
Status runRedirect(const RedirectOptions& options, std::ostream& out);
Status runRedirect(const RedirectOptions& options);  // prints to stdout

}  // namespace zt::redirect
