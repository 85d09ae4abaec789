#include "ztunnel/redirect/iptables.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ztunnel/core/log.h"

namespace zt::redirect {

namespace {

constexpr std::string_view kTables[] = {"mangle", "nat"};

std::string hex(uint32_t v) {
  return fmt::format("{:#x}", v);
}

std::string markSpec(uint32_t mark, uint32_t mask) {
  return hex(mark) + "/" + hex(mask);
}

std::string_view loopbackHost(IpFamily family) {
  return family == IpFamily::kV4 ? "127.0.0.1/32" : "::1/128";
}

std::string_view familyName(IpFamily family) {
  return family == IpFamily::kV4 ? "IPv4" : "IPv6";
}

std::string restoreTool(IpFamily family) {
  return family == IpFamily::kV4 ? "iptables-restore" : "ip6tables-restore";
}
std::string saveTool(IpFamily family) {
  return family == IpFamily::kV4 ? "iptables-save" : "ip6tables-save";
}
std::string familyFlag(IpFamily family) {
  return family == IpFamily::kV4 ? "-4" : "-6";
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) {
    return {};
  }
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// Splits on whitespace runs.
std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  std::string w;
  while (in >> w) {
    out.push_back(w);
  }
  return out;
}

bool readSysctl(const std::string& path, std::string& value) {
  std::ifstream f(path);
  if (!f) {
    return false;
  }
  std::getline(f, value);
  value = trim(value);
  return true;
}

// Whether the v6 half can be applied here: IPv6 on in this namespace and ip6tables nat usable.
// Returns an empty string when usable, else the reason to log.
std::string v6Unusable() {
  std::string disabled;
  if (!readSysctl("/proc/sys/net/ipv6/conf/lo/disable_ipv6", disabled)) {
    return "IPv6 is not available in this kernel or namespace";
  }
  if (disabled != "0") {
    return "IPv6 is disabled on lo (net.ipv6.conf.lo.disable_ipv6=" + disabled + ")";
  }
  auto probe = runCommand({"ip6tables", "-t", "nat", "-S"});
  if (!probe) {
    return "ip6tables is not usable: " + probe.error().message();
  }
  if (probe->exitStatus != 0) {
    return "ip6tables nat table is not usable: " + trim(probe->err);
  }
  return {};
}

Result<SavedRules> readRules(IpFamily family) {
  auto saved = runChecked({saveTool(family)});
  if (!saved) {
    return fail(std::move(saved).error());
  }
  return parseIptablesSave(*saved);
}

Status applyScript(IpFamily family, const std::string& script) {
  if (script.empty()) {
    return ok();
  }
  auto r = runChecked({restoreTool(family), "--noflush"}, script);
  if (!r) {
    return fail(std::move(r).error());
  }
  return ok();
}

Result<bool> ipRulePresent(const RedirectOptions& options, IpFamily family) {
  auto shown = runChecked({"ip", "-N", familyFlag(family), "rule", "show", "pref",
                           std::to_string(options.rulePriority)});
  if (!shown) {
    return fail(std::move(shown).error());
  }
  return hasIpRule(*shown, options);
}

Result<bool> localRoutePresent(const RedirectOptions& options, IpFamily family) {
  auto shown = runCommand(
      {"ip", familyFlag(family), "route", "show", "table", std::to_string(options.routeTable)});
  if (!shown) {
    return fail(std::move(shown).error());
  }
  if (shown->exitStatus != 0) {
    // An empty IPv6 table does not exist at all ("FIB table does not exist").
    if (shown->err.find("does not exist") != std::string::npos) {
      return false;
    }
    return fail(
        RedirectErrc::kCommandFailed,
        fmt::format("ip {} route show table {} exited with status {}: {}", familyFlag(family),
                    options.routeTable, shown->exitStatus, trim(shown->err)));
  }
  return hasLocalRoute(shown->out);
}

Status runIp(std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  auto r = runChecked(args);
  if (!r) {
    return fail(std::move(r).error());
  }
  return ok();
}

Status installFamily(const RedirectOptions& options, IpFamily family) {
  auto current = readRules(family);
  if (!current) {
    return fail(std::move(current).error());
  }
  ZT_TRY_STATUS(applyScript(family, installScript(options, family, *current)));
  auto hasRule = ipRulePresent(options, family);
  if (!hasRule) {
    return fail(std::move(hasRule).error());
  }
  if (!*hasRule) {
    ZT_TRY_STATUS(runIp(ipRuleArgs(options, family, "add")));
  }
  return runIp(ipRouteArgs(options, family, "replace"));
}

Status removeFamily(const RedirectOptions& options, IpFamily family) {
  auto current = readRules(family);
  if (!current) {
    return fail(std::move(current).error());
  }
  ZT_TRY_STATUS(applyScript(family, removeScript(*current)));
  // Several identical rules may exist if something else added ours too; remove them all (bounded).
  for (int i = 0; i < 64; ++i) {
    auto hasRule = ipRulePresent(options, family);
    if (!hasRule) {
      return fail(std::move(hasRule).error());
    }
    if (!*hasRule) {
      break;
    }
    ZT_TRY_STATUS(runIp(ipRuleArgs(options, family, "del")));
  }
  auto hasRoute = localRoutePresent(options, family);
  if (!hasRoute) {
    return fail(std::move(hasRoute).error());
  }
  if (*hasRoute) {
    ZT_TRY_STATUS(runIp(ipRouteArgs(options, family, "del")));
  }
  return ok();
}

// Everything install adds, as iptables-save would show it; the input of the remove dry run.
SavedRules fullyInstalled() {
  SavedRules saved;
  for (const auto& rule : jumpRules()) {
    saved[rule.table].rules.push_back(rule.line());
    saved[rule.table].chains.insert(std::string(kPreroutingChain));
    saved[rule.table].chains.insert(std::string(kOutputChain));
  }
  return saved;
}

}  // namespace

Status validate(const RedirectOptions& o) {
  auto bad = [](std::string detail) {
    return fail(RedirectErrc::kInvalidOptions, std::move(detail));
  };
  if (o.outboundPort == 0 || o.inboundPlaintextPort == 0 || o.inboundHbonePort == 0) {
    return bad("ports must be non-zero");
  }
  if (o.outboundPort == o.inboundPlaintextPort || o.outboundPort == o.inboundHbonePort ||
      o.inboundPlaintextPort == o.inboundHbonePort) {
    return bad(fmt::format("ports must be distinct (outbound {}, inbound plaintext {}, hbone {})",
                           o.outboundPort, o.inboundPlaintextPort, o.inboundHbonePort));
  }
  if (o.markMask == 0) {
    return bad("mark mask must be non-zero");
  }
  if (o.packetMark == 0 || (o.packetMark & ~o.markMask) != 0) {
    return bad(fmt::format("packet mark {} must be non-zero and within mask {}", hex(o.packetMark),
                           hex(o.markMask)));
  }
  if (o.connMark == 0 || (o.connMark & ~o.markMask) != 0) {
    return bad(fmt::format("connection mark {} must be non-zero and within mask {}",
                           hex(o.connMark), hex(o.markMask)));
  }
  if (o.connMark == o.packetMark) {
    return bad("packet mark and connection mark must differ");
  }
  if (o.routeTable == 0 || o.routeTable >= 0x80000000u ||
      (o.routeTable >= 253 && o.routeTable <= 255)) {
    return bad(fmt::format("route table {} is reserved or out of range", o.routeTable));
  }
  if (o.rulePriority == 0 || o.rulePriority >= 32766) {
    return bad(fmt::format("rule priority {} must be between 1 and 32765", o.rulePriority));
  }
  return ok();
}

std::vector<Rule> jumpRules() {
  const std::string prert(kPreroutingChain);
  const std::string output(kOutputChain);
  return {
      {"mangle", "PREROUTING", "-j " + prert},
      {"mangle", "OUTPUT", "-j " + output},
      {"nat", "PREROUTING", "-j " + prert},
      {"nat", "OUTPUT", "-j " + output},
  };
}

std::vector<Rule> chainRules(const RedirectOptions& o, IpFamily family) {
  const std::string prert(kPreroutingChain);
  const std::string output(kOutputChain);
  const std::string lo(loopbackHost(family));
  const std::string pkt = markSpec(o.packetMark, o.markMask);
  const std::string conn = markSpec(o.connMark, o.markMask);
  return {
      // Connections ztunnel opened (its sockets carry the packet mark) get the connection mark...
      {"mangle", prert, "-m mark --mark " + pkt + " -j CONNMARK --set-xmark " + conn},
      // ...which the replies of the local app carry back, so policy routing returns them to lo.
      {"mangle", output,
       "-m connmark --mark " + conn +
           " -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff"},
      {"nat", prert,
       fmt::format("! -d {} -p tcp -m tcp ! --dport {} -m mark ! --mark {} -j REDIRECT "
                   "--to-ports {}",
                   lo, o.inboundHbonePort, pkt, o.inboundPlaintextPort)},
      {"nat", output, "-p tcp -m mark --mark " + conn + " -j ACCEPT"},
      {"nat", output, "! -d " + lo + " -o lo -j ACCEPT"},
      {"nat", output,
       fmt::format("! -d {} -p tcp -m mark ! --mark {} -j REDIRECT --to-ports {}", lo, pkt,
                   o.outboundPort)},
  };
}

Result<SavedRules> parseIptablesSave(std::string_view text) {
  SavedRules saved;
  SavedTable* table = nullptr;
  size_t lineNo = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineNo;
    if (line.empty() || line[0] == '#') {
      continue;
    }
    auto bad = [&](std::string_view why) {
      return fail(RedirectErrc::kUnexpectedState,
                  fmt::format("iptables-save line {}: {}: '{}'", lineNo, why, line));
    };
    if (line[0] == '*') {
      table = &saved[line.substr(1)];
      continue;
    }
    if (line == "COMMIT") {
      table = nullptr;
      continue;
    }
    if (table == nullptr) {
      return bad("outside of a table");
    }
    if (line[0] == ':') {
      size_t sp = line.find(' ');
      table->chains.insert(line.substr(1, sp == std::string::npos ? std::string::npos : sp - 1));
      continue;
    }
    if (line.rfind("-A ", 0) == 0) {
      table->rules.push_back(line);
      continue;
    }
    return bad("not a chain or rule");
  }
  return saved;
}

std::string installScript(const RedirectOptions& options, IpFamily family,
                          const SavedRules& current) {
  const auto rules = chainRules(options, family);
  const auto jumps = jumpRules();
  std::string out;
  for (auto table : kTables) {
    out += fmt::format("*{}\n:{} - [0:0]\n:{} - [0:0]\n", table, kPreroutingChain, kOutputChain);
    for (const auto& r : rules) {
      if (r.table == table) {
        out += r.line() + "\n";
      }
    }
    auto it = current.find(std::string(table));
    for (const auto& j : jumps) {
      if (j.table != table) {
        continue;
      }
      bool present = it != current.end() &&
                     std::find(it->second.rules.begin(), it->second.rules.end(), j.line()) !=
                         it->second.rules.end();
      if (!present) {
        out += j.line() + "\n";
      }
    }
    out += "COMMIT\n";
  }
  return out;
}

std::string removeScript(const SavedRules& current) {
  const auto jumps = jumpRules();
  std::string out;
  for (auto table : kTables) {
    auto it = current.find(std::string(table));
    if (it == current.end()) {
      continue;
    }
    std::string body;
    for (const auto& line : it->second.rules) {
      for (const auto& j : jumps) {
        if (j.table == table && line == j.line()) {
          body += "-D " + j.chain + " " + j.spec + "\n";
        }
      }
    }
    for (auto chain : {kPreroutingChain, kOutputChain}) {
      if (it->second.chains.count(std::string(chain)) != 0) {
        body += fmt::format("-F {}\n-X {}\n", chain, chain);
      }
    }
    if (!body.empty()) {
      out += fmt::format("*{}\n{}COMMIT\n", table, body);
    }
  }
  return out;
}

std::vector<std::string> ipRuleArgs(const RedirectOptions& o, IpFamily family,
                                    std::string_view verb) {
  return {familyFlag(family),
          "rule",
          std::string(verb),
          "fwmark",
          markSpec(o.connMark, o.markMask),
          "pref",
          std::to_string(o.rulePriority),
          "lookup",
          std::to_string(o.routeTable)};
}

std::vector<std::string> ipRouteArgs(const RedirectOptions& o, IpFamily family,
                                     std::string_view verb) {
  return {familyFlag(family),
          "route",
          std::string(verb),
          "local",
          family == IpFamily::kV4 ? "0.0.0.0/0" : "::/0",
          "dev",
          "lo",
          "table",
          std::to_string(o.routeTable)};
}

bool hasIpRule(std::string_view ipRuleShow, const RedirectOptions& o) {
  // `ip -N rule show` prints "32764:\tfrom all fwmark 0x111/0xfff lookup 100".
  const std::vector<std::string> want = {std::to_string(o.rulePriority) + ":",
                                         "from",
                                         "all",
                                         "fwmark",
                                         markSpec(o.connMark, o.markMask),
                                         "lookup",
                                         std::to_string(o.routeTable)};
  std::istringstream in{std::string(ipRuleShow)};
  std::string line;
  while (std::getline(in, line)) {
    if (words(line) == want) {
      return true;
    }
  }
  return false;
}

bool hasLocalRoute(std::string_view ipRouteShow) {
  // "local default dev lo scope host" (v4) / "local default dev lo metric 1024 pref medium" (v6).
  std::istringstream in{std::string(ipRouteShow)};
  std::string line;
  while (std::getline(in, line)) {
    auto w = words(line);
    if (w.size() >= 4 && w[0] == "local" &&
        (w[1] == "default" || w[1] == "0.0.0.0/0" || w[1] == "::/0") && w[2] == "dev" &&
        w[3] == "lo") {
      return true;
    }
  }
  return false;
}

Status install(const RedirectOptions& options) {
  ZT_TRY_STATUS(validate(options));
  std::vector<IpFamily> families = {IpFamily::kV4};
  if (options.ipv6) {
    if (auto why = v6Unusable(); why.empty()) {
      families.push_back(IpFamily::kV6);
    } else {
      ZT_INFO("redirect: skipping IPv6 capture rules: {}", why);
    }
  }
  for (auto family : families) {
    auto st = installFamily(options, family);
    if (!st) {
      auto undo = remove(options);
      std::string context = fmt::format("install {} capture rules", familyName(family));
      if (undo) {
        context += " (partial changes rolled back)";
      } else {
        context += " (rollback failed too: " + undo.error().message() + ")";
      }
      return fail(std::move(st).error().withContext(context));
    }
  }
  ZT_INFO(
      "redirect: capture rules installed ({}; outbound -> {}, inbound -> {}, hbone {} "
      "untouched)",
      families.size() == 2 ? "IPv4 and IPv6" : "IPv4 only", options.outboundPort,
      options.inboundPlaintextPort, options.inboundHbonePort);
  return ok();
}

Status remove(const RedirectOptions& options) {
  ZT_TRY_STATUS(validate(options));
  ZT_TRY_STATUS(removeFamily(options, IpFamily::kV4).map_error([](Error e) {
    return std::move(e).withContext("remove IPv4 capture rules");
  }));
  // IPv6 leftovers are removed whatever options.ipv6 says, as long as the v6 tools work here.
  if (auto why = v6Unusable(); why.empty()) {
    ZT_TRY_STATUS(removeFamily(options, IpFamily::kV6).map_error([](Error e) {
      return std::move(e).withContext("remove IPv6 capture rules");
    }));
  } else {
    ZT_INFO("redirect: not looking for IPv6 capture rules: {}", why);
  }
  return ok();
}

std::string dryRunText(const RedirectOptions& options) {
  std::vector<IpFamily> families = {IpFamily::kV4};
  if (options.ipv6) {
    families.push_back(IpFamily::kV6);
  }
  const bool installing = options.action == Action::kInstall;
  const SavedRules everything = fullyInstalled();
  std::string out;
  for (auto family : families) {
    out += fmt::format("# {}: {} --noflush <<EOF\n", familyName(family), restoreTool(family));
    out += installing ? installScript(options, family, SavedRules{}) : removeScript(everything);
    out += "EOF\n";
    auto rule = ipRuleArgs(options, family, installing ? "add" : "del");
    auto route = ipRouteArgs(options, family, installing ? "replace" : "del");
    out += "ip " + joinArgv(rule) + "\n";
    out += "ip " + joinArgv(route) + "\n";
  }
  return out;
}

Status runRedirect(const RedirectOptions& options, std::ostream& out) {
  ZT_TRY_STATUS(validate(options));
  if (options.dryRun) {
    out << dryRunText(options);
    out.flush();
    return ok();
  }
  return options.action == Action::kInstall ? install(options) : remove(options);
}

Status runRedirect(const RedirectOptions& options) {
  return runRedirect(options, std::cout);
}

}  // namespace zt::redirect
