#include "ztunnel/xds/local_config.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <unordered_map>
#include <utility>

#include "ztunnel/core/log.h"

namespace zt::xds {

namespace {

using state::Authorization;
using state::GatewayAddress;
using state::PortMap;
using state::Service;
using state::Workload;

// Thrown only inside the parser and caught at parseLocalConfig's boundary.
struct ParseError {
  std::string message;
};

// A value found at a key path, with the position to report problems at. The path is kept as a
// link to the parent plus this step and rendered only for an error message: most nodes of a
// large document never need it.
struct Val {
  enum class Step : uint8_t {
    kRoot,       // ""
    kField,      // parent.key
    kIndex,      // parent[index]
    kKey,        // parent[key]      (port maps)
    kQuotedKey,  // parent["key"]    (workload services)
    kSame,       // the parent's path (a dynamic map's key itself)
  };
  YAML::Node node;
  YAML::Mark mark;
  const Val* parent = nullptr;  // outlives this Val (parsing recurses depth-first)
  Step step = Step::kRoot;
  std::string_view key;  // kField/kKey/kQuotedKey: points into the YAML document or a literal
  size_t index = 0;      // kIndex

  std::string path() const {
    std::string base = parent != nullptr ? parent->path() : std::string();
    switch (step) {
      case Step::kRoot:
        return {};
      case Step::kField:
        return base.empty() ? std::string(key) : base + "." + std::string(key);
      case Step::kIndex:
        return base + "[" + std::to_string(index) + "]";
      case Step::kKey:
        return base + "[" + std::string(key) + "]";
      case Step::kQuotedKey:
        return base + "[\"" + std::string(key) + "\"]";
      case Step::kSame:
        return base;
    }
    return base;
  }
};

std::string joinNames(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto n : names) {
    if (!out.empty()) {
      out += ", ";
    }
    out += n;
  }
  return out;
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
  return out;
}

std::string_view typeName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "?";
}

class Parser {
 public:
  Parser(std::string_view source, const ParseLimits& limits) : source_(source), limits_(limits) {}

  LocalConfig parseTop(const YAML::Node& root);

  // "source:line:col: path: message" (line/column 1-based; omitted when unknown).
  std::string format(const YAML::Mark& mark, std::string_view path, std::string_view msg) const {
    std::string out(source_);
    if (!mark.is_null() && mark.line >= 0) {
      out += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    }
    out += ": ";
    if (!path.empty()) {
      out += path;
      out += ": ";
    }
    out += msg;
    return out;
  }

  [[noreturn]] void error(const YAML::Mark& mark, std::string_view path, std::string_view msg) {
    throw ParseError{format(mark, path, msg)};
  }
  [[noreturn]] void error(const Val& v, std::string_view msg) { error(v.mark, v.path(), msg); }

  void touch(const Val& v) {
    if (++nodes_ > limits_.maxNodes) {
      error(v, "document too large (more than " + std::to_string(limits_.maxNodes) + " nodes)");
    }
  }

  // ---- structure ----

  // The entries of a map with fixed keys: checks types, duplicates and unknown keys.
  class Fields {
   public:
    Fields(Parser& p, const Val& v, std::initializer_list<std::string_view> allowed)
        : p_(p), self_(&v) {
      if (!v.node.IsMap()) {
        p.error(v, std::string("expected a map, got ") + std::string(typeName(v.node)));
      }
      entries_.reserve(v.node.size());
      for (auto it = v.node.begin(); it != v.node.end(); ++it) {
        YAML::Node k = it->first;  // copies: the iterator proxy is a temporary
        if (!k.IsScalar()) {
          p.error(k.Mark(), v.path(), "map keys must be strings");
        }
        // The scalar lives in the document, which outlives the parse.
        std::string_view key = k.Scalar();
        YAML::Node value = it->second;
        Val child{value, value.IsNull() ? k.Mark() : value.Mark(), &v, Val::Step::kField, key};
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
          p.error(k.Mark(), child.path(), "unknown key (allowed: " + joinNames(allowed) + ")");
        }
        for (const auto& e : entries_) {
          if (e.key == key) {
            p.error(k.Mark(), child.path(), "duplicate key");
          }
        }
        p.touch(child);
        entries_.push_back(std::move(child));
      }
    }

    // The value of `key` if present and not null.
    const Val* get(std::string_view key) const {
      for (const auto& e : entries_) {
        if (e.key == key) {
          return e.node.IsNull() ? nullptr : &e;
        }
      }
      return nullptr;
    }
    const Val& require(std::string_view key) const {
      const Val* v = get(key);
      if (v == nullptr) {
        p_.error(*self_, "missing required key " + quoted(key));
      }
      return *v;
    }
    bool has(std::string_view key) const { return get(key) != nullptr; }

   private:
    Parser& p_;
    const Val* self_;
    std::vector<Val> entries_;  // built once; element addresses stay valid
  };

  std::vector<Val> list(const Val& v) {
    if (!v.node.IsSequence()) {
      error(v, std::string("expected a list, got ") + std::string(typeName(v.node)));
    }
    std::vector<Val> out;
    out.reserve(v.node.size());
    size_t i = 0;
    for (auto it = v.node.begin(); it != v.node.end(); ++it, ++i) {
      YAML::Node child = *it;
      YAML::Mark m = child.Mark();
      if (m.is_null() || child.IsNull()) {
        m = v.mark;
      }
      out.push_back(Val{child, m, &v, Val::Step::kIndex, {}, i});
      touch(out.back());
    }
    return out;
  }

  // Entries of a map with arbitrary keys (port maps, workload services), duplicates rejected.
  std::vector<std::pair<Val, Val>> dynamicMap(const Val& v) {
    if (!v.node.IsMap()) {
      error(v, std::string("expected a map, got ") + std::string(typeName(v.node)));
    }
    std::vector<std::pair<Val, Val>> out;
    for (auto it = v.node.begin(); it != v.node.end(); ++it) {
      YAML::Node k = it->first;  // copies: the iterator proxy is a temporary
      Val key{k, k.Mark(), &v, Val::Step::kSame};
      if (!k.IsScalar()) {
        error(key, "map keys must be scalars");
      }
      for (const auto& e : out) {
        if (e.first.node.Scalar() == k.Scalar()) {
          error(key, "duplicate key " + quoted(k.Scalar()));
        }
      }
      YAML::Node value = it->second;
      Val val{value, value.IsNull() ? k.Mark() : value.Mark(), &v, Val::Step::kKey, k.Scalar()};
      touch(val);
      out.emplace_back(std::move(key), std::move(val));
    }
    return out;
  }

  // ---- scalars ----

  std::string str(const Val& v) {
    if (!v.node.IsScalar()) {
      error(v, std::string("expected a string, got ") + std::string(typeName(v.node)));
    }
    return v.node.Scalar();
  }

  std::vector<std::string> strList(const Val& v) {
    std::vector<std::string> out;
    for (const Val& item : list(v)) {
      out.push_back(str(item));
    }
    return out;
  }

  // A non-negative decimal integer in [min, max]. `allowQuoted` for map keys.
  uint64_t integer(const Val& v, uint64_t min, uint64_t max, bool allowQuoted = false) {
    if (!v.node.IsScalar()) {
      error(v, std::string("expected an integer, got ") + std::string(typeName(v.node)));
    }
    const std::string& text = v.node.Scalar();
    if (!allowQuoted && v.node.Tag() == "!") {
      error(v, "expected an integer, got the quoted string " + quoted(text));
    }
    uint64_t value = 0;
    const bool digits = !text.empty() && std::all_of(text.begin(), text.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!digits || ec != std::errc() || ptr != text.data() + text.size()) {
      error(v, quoted(text) + " is not a non-negative integer");
    }
    if (value < min || value > max) {
      error(v,
            text + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    }
    return value;
  }

  uint16_t port(const Val& v, uint16_t min = 0, bool allowQuoted = false) {
    return static_cast<uint16_t>(integer(v, min, 65535, allowQuoted));
  }

  bool boolean(const Val& v) {
    if (!v.node.IsScalar()) {
      error(v, std::string("expected a boolean, got ") + std::string(typeName(v.node)));
    }
    const std::string& t = v.node.Scalar();
    if (v.node.Tag() != "!") {
      if (t == "true" || t == "True" || t == "TRUE") {
        return true;
      }
      if (t == "false" || t == "False" || t == "FALSE") {
        return false;
      }
    }
    error(v, quoted(t) + " is not a boolean (true or false)");
  }

  IpAddress ip(const Val& v) {
    std::string text = str(v);
    auto parsed = IpAddress::parse(text);
    if (!parsed) {
      error(v, quoted(text) + " is not an IP address");
    }
    return *parsed;
  }

  Cidr cidr(const Val& v) {
    std::string text = str(v);
    auto parsed = Cidr::parse(text);
    if (!parsed) {
      error(v, quoted(text) + " is not a CIDR or IP address");
    }
    return *parsed;
  }

  template <class E>
  E enumValue(const Val& v, std::initializer_list<std::pair<std::string_view, E>> names) {
    std::string text = str(v);
    for (const auto& [name, value] : names) {
      if (text == name) {
        return value;
      }
    }
    std::string allowed;
    for (const auto& [name, value] : names) {
      if (!allowed.empty()) {
        allowed += ", ";
      }
      allowed += name;
    }
    error(v, quoted(text) + " is not one of: " + allowed);
  }

  // ---- objects ----

  Workload workload(const Val& v);
  Service service(const Val& v);
  Authorization policy(const Val& v);

  PortMap portMap(const Val& v) {
    PortMap out;
    for (const auto& [k, val] : dynamicMap(v)) {
      Val keyAt{k.node, k.mark, &v, Val::Step::kKey, k.node.Scalar()};
      uint16_t servicePort = port(keyAt, 1, /*allowQuoted=*/true);
      out[servicePort] = port(val);
    }
    return out;
  }

  GatewayAddress gateway(const Val& v, uint32_t* weight) {
    Fields f = weight != nullptr ? Fields(*this, v, {"destination", "hboneMtlsPort", "weight"})
                                 : Fields(*this, v, {"destination", "hboneMtlsPort"});
    GatewayAddress gw;
    const Val& dest = f.require("destination");
    if (dest.node.IsMap() && dest.node["address"]) {
      Fields d(*this, dest, {"network", "address"});
      state::NetworkAddress addr;
      if (const Val* n = d.get("network")) {
        addr.network = str(*n);
      }
      addr.address = ip(d.require("address"));
      gw.destination = std::move(addr);
    } else if (dest.node.IsMap() && dest.node["hostname"]) {
      Fields d(*this, dest, {"namespace", "hostname"});
      state::NamespacedHostname nh;
      nh.namespace_ = str(d.require("namespace"));
      nh.hostname = str(d.require("hostname"));
      gw.destination = std::move(nh);
    } else {
      error(dest, "expected {network, address} or {namespace, hostname}");
    }
    if (const Val* p = f.get("hboneMtlsPort")) {
      gw.hboneMtlsPort = port(*p, 1);
    }
    if (weight != nullptr) {
      *weight = 0;
      if (const Val* w = f.get("weight")) {
        *weight = static_cast<uint32_t>(integer(*w, 0, UINT32_MAX));
      }
    }
    return gw;
  }

  state::ServiceVip vip(const Val& v) {
    std::string text = str(v);
    auto bad = [&]() {
      error(v, quoted(text) + " is not a VIP of the form network/ip or network/ip/prefix");
    };
    auto slash = text.find('/');
    if (slash == std::string::npos) {
      bad();
    }
    state::ServiceVip out;
    out.network = text.substr(0, slash);
    std::string_view rest = std::string_view(text).substr(slash + 1);
    auto slash2 = rest.find('/');
    auto addr = IpAddress::parse(rest.substr(0, slash2));
    if (!addr) {
      bad();
    }
    out.address = *addr;
    if (slash2 != std::string_view::npos) {
      auto c = Cidr::parse(rest);
      if (!c) {
        bad();
      }
      out.address = c->base();
      out.prefixLength = c->prefixLength();
    }
    return out;
  }

  state::StringMatch stringMatch(const Val& v) {
    Fields f(*this, v, {"Exact", "Prefix", "Suffix", "Presence"});
    const int count = int(f.has("Exact")) + int(f.has("Prefix")) + int(f.has("Suffix")) +
                      int(v.node["Presence"].IsDefined());
    if (count != 1) {
      error(v, "expected exactly one of Exact, Prefix, Suffix, Presence");
    }
    if (const Val* e = f.get("Exact")) {
      return state::StringMatch::exact(str(*e));
    }
    if (const Val* e = f.get("Prefix")) {
      return state::StringMatch::prefix(str(*e));
    }
    if (const Val* e = f.get("Suffix")) {
      return state::StringMatch::suffix(str(*e));
    }
    if (const Val* e = f.get("Presence")) {
      // Presence carries no value: accept [] or {} (null is filtered out by get()).
      if (!((e->node.IsSequence() || e->node.IsMap()) && e->node.size() == 0)) {
        error(*e, "Presence takes no value (use [], {} or null)");
      }
    }
    return state::StringMatch::presence();
  }

  std::vector<state::StringMatch> stringMatches(const Val* v) {
    std::vector<state::StringMatch> out;
    if (v != nullptr) {
      for (const Val& item : list(*v)) {
        out.push_back(stringMatch(item));
      }
    }
    return out;
  }

  std::vector<state::ServiceAccountMatch> serviceAccountMatches(const Val* v) {
    std::vector<state::ServiceAccountMatch> out;
    if (v != nullptr) {
      for (const Val& item : list(*v)) {
        Fields f(*this, item, {"namespace", "serviceAccount"});
        out.push_back({str(f.require("namespace")), str(f.require("serviceAccount"))});
      }
    }
    return out;
  }

  std::vector<Cidr> cidrs(const Val* v) {
    std::vector<Cidr> out;
    if (v != nullptr) {
      for (const Val& item : list(*v)) {
        out.push_back(cidr(item));
      }
    }
    return out;
  }

  std::vector<uint32_t> ports(const Val* v) {
    std::vector<uint32_t> out;
    if (v != nullptr) {
      for (const Val& item : list(*v)) {
        out.push_back(port(item));
      }
    }
    return out;
  }

  state::Match match(const Val& v) {
    Fields f(*this, v,
             {"namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts", "principals",
              "notPrincipals", "sourceIps", "notSourceIps", "destinationIps", "notDestinationIps",
              "destinationPorts", "notDestinationPorts"});
    state::Match m;
    m.namespaces = stringMatches(f.get("namespaces"));
    m.notNamespaces = stringMatches(f.get("notNamespaces"));
    m.serviceAccounts = serviceAccountMatches(f.get("serviceAccounts"));
    m.notServiceAccounts = serviceAccountMatches(f.get("notServiceAccounts"));
    m.principals = stringMatches(f.get("principals"));
    m.notPrincipals = stringMatches(f.get("notPrincipals"));
    m.sourceIps = cidrs(f.get("sourceIps"));
    m.notSourceIps = cidrs(f.get("notSourceIps"));
    m.destinationIps = cidrs(f.get("destinationIps"));
    m.notDestinationIps = cidrs(f.get("notDestinationIps"));
    m.destinationPorts = ports(f.get("destinationPorts"));
    m.notDestinationPorts = ports(f.get("notDestinationPorts"));
    return m;
  }

 private:
  std::string_view source_;
  ParseLimits limits_;
  size_t nodes_ = 0;
};

Workload Parser::workload(const Val& v) {
  Fields f(*this, v,
           {"uid",
            "name",
            "namespace",
            "serviceAccount",
            "trustDomain",
            "workloadIps",
            "protocol",
            "networkMode",
            "network",
            "node",
            "hostname",
            "workloadName",
            "workloadType",
            "canonicalName",
            "canonicalRevision",
            "nativeTunnel",
            "applicationTunnel",
            "authorizationPolicies",
            "status",
            "clusterId",
            "locality",
            "waypoint",
            "networkGateway",
            "capacity",
            "services"});
  Workload w;
  w.uid = str(f.require("uid"));
  if (w.uid.empty()) {
    error(f.require("uid"), "must not be empty");
  }
  w.name = str(f.require("name"));
  if (w.name.empty()) {
    error(f.require("name"), "must not be empty");
  }
  w.namespace_ = str(f.require("namespace"));
  if (w.namespace_.empty()) {
    error(f.require("namespace"), "must not be empty");
  }
  auto optStr = [&](std::string_view key, std::string& out) {
    if (const Val* x = f.get(key)) {
      out = str(*x);
    }
  };
  optStr("serviceAccount", w.serviceAccount);
  optStr("trustDomain", w.trustDomain);
  optStr("network", w.network);
  optStr("node", w.node);
  optStr("hostname", w.hostname);
  optStr("workloadName", w.workloadName);
  optStr("canonicalName", w.canonicalName);
  optStr("canonicalRevision", w.canonicalRevision);
  w.clusterId.clear();  // empty ⇒ StateOptions::clusterId at build time
  optStr("clusterId", w.clusterId);
  if (const Val* x = f.get("workloadIps")) {
    for (const Val& item : list(*x)) {
      w.workloadIps.push_back(ip(item));
    }
  }
  if (const Val* x = f.get("protocol")) {
    w.protocol = enumValue<state::TunnelProtocol>(
        *x, {{"HBONE", state::TunnelProtocol::kHbone}, {"TCP", state::TunnelProtocol::kNone}});
  }
  if (const Val* x = f.get("networkMode")) {
    w.networkMode =
        enumValue<state::NetworkMode>(*x, {{"Standard", state::NetworkMode::kStandard},
                                           {"HostNetwork", state::NetworkMode::kHostNetwork}});
  }
  if (const Val* x = f.get("workloadType")) {
    w.workloadType =
        enumValue<state::WorkloadType>(*x, {{"deployment", state::WorkloadType::kDeployment},
                                            {"cronjob", state::WorkloadType::kCronJob},
                                            {"pod", state::WorkloadType::kPod},
                                            {"job", state::WorkloadType::kJob}});
  }
  if (const Val* x = f.get("status")) {
    w.status = enumValue<state::HealthStatus>(*x, {{"Healthy", state::HealthStatus::kHealthy},
                                                   {"Unhealthy", state::HealthStatus::kUnhealthy}});
  }
  if (const Val* x = f.get("nativeTunnel")) {
    w.nativeTunnel = boolean(*x);
  }
  if (const Val* x = f.get("applicationTunnel")) {
    Fields t(*this, *x, {"protocol", "port"});
    state::ApplicationTunnel at;
    if (const Val* p = t.get("protocol")) {
      at.protocol = enumValue<state::AppTunnelProtocol>(
          *p,
          {{"NONE", state::AppTunnelProtocol::kNone}, {"PROXY", state::AppTunnelProtocol::kProxy}});
    }
    if (const Val* p = t.get("port")) {
      at.port = port(*p);
    }
    w.applicationTunnel = at;
  }
  if (const Val* x = f.get("authorizationPolicies")) {
    w.authorizationPolicies = strList(*x);
  }
  if (const Val* x = f.get("locality")) {
    Fields l(*this, *x, {"region", "zone", "subzone"});
    if (const Val* p = l.get("region")) {
      w.locality.region = str(*p);
    }
    if (const Val* p = l.get("zone")) {
      w.locality.zone = str(*p);
    }
    if (const Val* p = l.get("subzone")) {
      w.locality.subzone = str(*p);
    }
  }
  if (const Val* x = f.get("waypoint")) {
    w.waypoint = gateway(*x, nullptr);
  }
  if (const Val* x = f.get("networkGateway")) {
    w.networkGateway = gateway(*x, nullptr);
  }
  if (const Val* x = f.get("capacity")) {
    w.capacity = static_cast<uint32_t>(integer(*x, 0, UINT32_MAX));
  }
  if (const Val* x = f.get("services")) {
    for (const auto& [k, val] : dynamicMap(*x)) {
      const std::string& key = k.node.Scalar();
      auto slash = key.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == key.size()) {
        error(k, quoted(key) + " is not a namespace/hostname service key");
      }
      Val at{val.node, val.mark, x, Val::Step::kQuotedKey, key};
      w.services.emplace(key, portMap(at));
    }
  }
  return w;
}

Service Parser::service(const Val& v) {
  Fields f(*this, v,
           {"name", "namespace", "hostname", "vips", "ports", "subjectAltNames", "waypoint",
            "weightedWaypoints", "loadBalancer", "ipFamilies", "canonical", "visibility"});
  Service s;
  s.name = str(f.require("name"));
  s.namespace_ = str(f.require("namespace"));
  s.hostname = str(f.require("hostname"));
  if (s.namespace_.empty()) {
    error(f.require("namespace"), "must not be empty");
  }
  if (s.hostname.empty()) {
    error(f.require("hostname"), "must not be empty");
  }
  if (const Val* x = f.get("vips")) {
    for (const Val& item : list(*x)) {
      s.vips.push_back(vip(item));
    }
  }
  if (const Val* x = f.get("ports")) {
    s.ports = portMap(*x);
  }
  if (const Val* x = f.get("subjectAltNames")) {
    s.subjectAltNames = strList(*x);
  }
  if (const Val* x = f.get("waypoint")) {
    s.waypoint = gateway(*x, nullptr);
  }
  if (const Val* x = f.get("weightedWaypoints")) {
    for (const Val& item : list(*x)) {
      state::WeightedWaypoint ww;
      ww.destination = gateway(item, &ww.weight);
      s.weightedWaypoints.push_back(std::move(ww));
    }
  }
  if (const Val* x = f.get("loadBalancer")) {
    Fields l(*this, *x, {"routingPreferences", "mode", "healthPolicy"});
    state::LoadBalancing lb;
    if (const Val* p = l.get("routingPreferences")) {
      for (const Val& item : list(*p)) {
        lb.routingPreference.push_back(
            enumValue<state::LbScope>(item, {{"Region", state::LbScope::kRegion},
                                             {"Zone", state::LbScope::kZone},
                                             {"Subzone", state::LbScope::kSubzone},
                                             {"Node", state::LbScope::kNode},
                                             {"Cluster", state::LbScope::kCluster},
                                             {"Network", state::LbScope::kNetwork}}));
      }
    }
    if (const Val* p = l.get("mode")) {
      lb.mode = enumValue<state::LbMode>(*p, {{"Standard", state::LbMode::kStandard},
                                              {"Strict", state::LbMode::kStrict},
                                              {"Failover", state::LbMode::kFailover},
                                              {"Passthrough", state::LbMode::kPassthrough}});
    }
    if (const Val* p = l.get("healthPolicy")) {
      lb.healthPolicy = enumValue<state::LbHealthPolicy>(
          *p, {{"OnlyHealthy", state::LbHealthPolicy::kOnlyHealthy},
               {"AllowAll", state::LbHealthPolicy::kAllowAll}});
    }
    s.loadBalancing = std::move(lb);
  }
  if (const Val* x = f.get("ipFamilies")) {
    s.ipFamilies = enumValue<state::IpFamilies>(*x, {{"Automatic", state::IpFamilies::kAutomatic},
                                                     {"IPv4Only", state::IpFamilies::kIpv4Only},
                                                     {"IPv6Only", state::IpFamilies::kIpv6Only},
                                                     {"Dual", state::IpFamilies::kDual},
                                                     {"IPv4", state::IpFamilies::kIpv4Only},
                                                     {"IPv6", state::IpFamilies::kIpv6Only}});
  }
  if (const Val* x = f.get("canonical")) {
    s.canonical = boolean(*x);
  }
  if (const Val* x = f.get("visibility")) {
    s.visibility = enumValue<state::ServiceVisibility>(
        *x, {{"Public", state::ServiceVisibility::kPublic},
             {"Namespace", state::ServiceVisibility::kNamespace}});
  }
  return s;
}

Authorization Parser::policy(const Val& v) {
  Fields f(*this, v, {"name", "namespace", "scope", "action", "dryRun", "rules"});
  Authorization p;
  p.name = str(f.require("name"));
  p.namespace_ = str(f.require("namespace"));
  if (p.name.empty()) {
    error(f.require("name"), "must not be empty");
  }
  if (p.namespace_.empty()) {
    error(f.require("namespace"), "must not be empty");
  }
  p.scope = enumValue<state::PolicyScope>(
      f.require("scope"), {{"Global", state::PolicyScope::kGlobal},
                           {"Namespace", state::PolicyScope::kNamespace},
                           {"WorkloadSelector", state::PolicyScope::kWorkloadSelector}});
  p.action = enumValue<state::PolicyAction>(
      f.require("action"),
      {{"Allow", state::PolicyAction::kAllow}, {"Deny", state::PolicyAction::kDeny}});
  if (const Val* x = f.get("dryRun")) {
    p.dryRun = boolean(*x);
  }
  if (const Val* x = f.get("rules")) {
    for (const Val& r : list(*x)) {
      state::Rule rule;
      for (const Val& c : list(r)) {
        state::Clause clause;
        for (const Val& m : list(c)) {
          clause.matches.push_back(match(m));
        }
        rule.clauses.push_back(std::move(clause));
      }
      p.rules.push_back(std::move(rule));
    }
  }
  return p;
}

LocalConfig Parser::parseTop(const YAML::Node& root) {
  LocalConfig out;
  if (root.IsNull() || !root.IsDefined()) {
    return out;  // an empty document is an empty config
  }
  Val top{root, root.Mark()};
  Fields f(*this, top, {"workloads", "policies", "services"});

  if (const Val* x = f.get("workloads")) {
    std::unordered_map<std::string, std::string> seen;  // uid -> path
    for (const Val& item : list(*x)) {
      Workload w = workload(item);
      auto [it, inserted] = seen.emplace(w.uid, item.path());
      if (!inserted) {
        error(item.node["uid"].Mark(), item.path() + ".uid",
              "duplicate uid " + quoted(w.uid) + " (also at " + it->second + ")");
      }
      out.workloads.push_back(std::move(w));
    }
  }
  if (const Val* x = f.get("services")) {
    std::unordered_map<std::string, std::string> seen;
    for (const Val& item : list(*x)) {
      Service s = service(item);
      auto [it, inserted] = seen.emplace(s.key(), item.path());
      if (!inserted) {
        error(item, "duplicate service " + quoted(s.key()) + " (also at " + it->second + ")");
      }
      out.services.push_back(std::move(s));
    }
  }
  if (const Val* x = f.get("policies")) {
    std::unordered_map<std::string, std::string> seen;
    for (const Val& item : list(*x)) {
      Authorization p = policy(item);
      auto [it, inserted] = seen.emplace(p.key(), item.path());
      if (!inserted) {
        error(item, "duplicate policy " + quoted(p.key()) + " (also at " + it->second + ")");
      }
      out.policies.push_back(std::move(p));
    }
  }
  return out;
}

std::string_view describeXds(int code) noexcept {
  switch (static_cast<XdsErrc>(code)) {
    case XdsErrc::kInvalidConfig:
      return "invalid configuration";
    case XdsErrc::kIo:
      return "reading configuration failed";
  }
  return "unknown xds error";
}

Result<std::string> readFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return fail(XdsErrc::kIo, "open " + path, errno);
  }
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(XdsErrc::kIo, "read " + path, errno);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

const ErrorCategory& errorCategory(XdsErrc) noexcept {
  static constexpr ErrorCategory kCategory{"xds", &describeXds};
  return kCategory;
}

Result<LocalConfig> parseLocalConfig(std::string_view yamlText, std::string_view sourceName,
                                     const ParseLimits& limits) {
  Parser parser(sourceName, limits);
  try {
    YAML::Node root = YAML::Load(std::string(yamlText));
    return parser.parseTop(root);
  } catch (const ParseError& e) {
    return fail(XdsErrc::kInvalidConfig, e.message);
  } catch (const YAML::DeepRecursion& e) {
    return fail(XdsErrc::kInvalidConfig, parser.format(e.mark, "", "YAML nesting too deep"));
  } catch (const YAML::Exception& e) {
    return fail(XdsErrc::kInvalidConfig, parser.format(e.mark, "", "YAML syntax error: " + e.msg));
  }
}

Result<LocalConfig> loadLocalConfigFile(const std::string& path) {
  auto text = readFile(path);
  if (!text) {
    return fail(std::move(text).error());
  }
  return parseLocalConfig(*text, path);
}

Result<std::shared_ptr<const state::ProxyState>> buildState(const LocalConfig& config,
                                                            const state::StateOptions& options,
                                                            uint64_t version) {
  state::ProxyState::Builder builder(options);
  builder.setVersion(version);
  for (const auto& w : config.workloads) {
    if (auto st = builder.addWorkload(w); !st) {
      return fail(XdsErrc::kInvalidConfig, st.error().message());
    }
  }
  for (const auto& s : config.services) {
    if (auto st = builder.addService(s); !st) {
      return fail(XdsErrc::kInvalidConfig, st.error().message());
    }
  }
  for (const auto& p : config.policies) {
    if (auto st = builder.addPolicy(p); !st) {
      return fail(XdsErrc::kInvalidConfig, st.error().message());
    }
  }
  return std::move(builder).build();
}

// ---------------------------------------------------------------------------------------------
// LocalConfigWatcher

Result<std::unique_ptr<LocalConfigWatcher>> LocalConfigWatcher::create(std::string path,
                                                                       state::StateOptions options,
                                                                       Callback onState) {
  UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) {
    return fail(XdsErrc::kIo, "inotify_init1", errno);
  }
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  // The directory, not the file: rename-replace and ConfigMap `..data` swaps only show up there.
  constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                             IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
  if (::inotify_add_watch(fd.get(), dir.c_str(), kMask) < 0) {
    return fail(XdsErrc::kIo, "inotify_add_watch " + dir, errno);
  }
  return std::unique_ptr<LocalConfigWatcher>(new LocalConfigWatcher(
      std::move(path), std::move(options), std::move(onState), std::move(fd)));
}

LocalConfigWatcher::LocalConfigWatcher(std::string path, state::StateOptions options,
                                       Callback onState, UniqueFd inotify)
    : path_(std::move(path)),
      options_(std::move(options)),
      onState_(std::move(onState)),
      inotify_(std::move(inotify)) {}

Status LocalConfigWatcher::loadNow() {
  return reload(/*force=*/true);
}

void LocalConfigWatcher::handleEvents() {
  // Drain everything queued; the events only say "look again", their content does not matter.
  alignas(inotify_event) char buf[8192];
  bool any = false;
  for (;;) {
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN) {
        ZT_WARN("local config watch on {}: read failed: {}", path_, std::strerror(errno));
      }
      break;
    }
    if (n == 0) {
      break;
    }
    any = true;
  }
  if (any) {
    // No stat() shortcut here: mtime has coarse (jiffy) granularity, so a same-size in-place
    // rewrite right after a load could look unchanged. Events are rare; compare the bytes.
    lastSignature_ = signature();
    (void)reload(/*force=*/false);
  }
}

std::optional<LocalConfigWatcher::FileSignature> LocalConfigWatcher::signature() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return std::nullopt;
  }
  return FileSignature{
      st.st_dev, st.st_ino, st.st_size,
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

void LocalConfigWatcher::checkNow() {
  auto sig = signature();
  if (sig && lastSignature_ && *sig == *lastSignature_) {
    return;
  }
  lastSignature_ = sig;
  (void)reload(/*force=*/false);
}

void LocalConfigWatcher::report(Error error) {
  // Report a given failure once, not on every event or periodic check.
  if (!lastError_ || lastError_->message() != error.message()) {
    ZT_ERROR("local config rejected, keeping the last good state: {}", error.message());
  }
  lastError_ = std::move(error);
}

Status LocalConfigWatcher::reload(bool force) {
  if (force) {
    lastSignature_ = signature();
  }
  auto text = readFile(path_);
  if (!text) {
    report(text.error());
    return fail(std::move(text).error());
  }
  if (!force && lastContent_ && *lastContent_ == *text) {
    return ok();  // same bytes as the last attempt (loaded, or already reported)
  }
  lastContent_ = *text;
  auto config = parseLocalConfig(*text, path_);
  if (!config) {
    report(config.error());
    return fail(std::move(config).error());
  }
  auto built = buildState(*config, options_, version_ + 1);
  if (!built) {
    report(built.error());
    return fail(std::move(built).error());
  }
  ++version_;
  lastError_.reset();
  ZT_INFO("local config {} loaded (version {}): {} workloads, {} services, {} policies", path_,
          version_, config->workloads.size(), config->services.size(), config->policies.size());
  onState_(std::move(*built));
  return ok();
}

}  // namespace zt::xds
