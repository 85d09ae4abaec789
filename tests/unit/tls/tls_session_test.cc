#include "ztunnel/tls/tls_session.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "tests/support/raw_tls_peer.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_pump.h"
#include "ztunnel/tls/cert_builder.h"

namespace zt::tls {
namespace {

using testing::HandshakeOutcome;
using testing::RawOutcome;
using testing::RawPeerConfig;
using testing::RawTlsPeer;
using testing::TestPki;
using testing::TlsPair;
using Clock = std::chrono::system_clock;

std::span<const uint8_t> bytesOf(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string randomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

class TlsSessionTest : public ::testing::Test {
 protected:
  TestPki mesh_{"cluster.local"};
  Identity serverId_ = mesh_.identity("ns-server", "server-sa");
  Identity clientId_ = mesh_.identity("ns-client", "client-sa");

  std::shared_ptr<const TlsContext> serverCtx(TlsOptions o = {}) {
    return mesh_.serverContext("ns-server", "server-sa", o);
  }
  std::shared_ptr<const TlsContext> clientCtx(TlsOptions o = {}) {
    return mesh_.clientContext("ns-client", "client-sa", o);
  }

  static std::unique_ptr<TlsSession> client(std::shared_ptr<const TlsContext> ctx,
                                            std::vector<Identity> expected) {
    auto s = TlsSession::client(std::move(ctx), std::move(expected));
    EXPECT_TRUE(s) << s.error().message();
    return std::move(*s);
  }
  static std::unique_ptr<TlsSession> server(std::shared_ptr<const TlsContext> ctx) {
    auto s = TlsSession::server(std::move(ctx));
    EXPECT_TRUE(s) << s.error().message();
    return std::move(*s);
  }

  TlsPair pair(std::shared_ptr<const TlsContext> c, std::shared_ptr<const TlsContext> s,
               std::vector<Identity> expected) {
    return TlsPair(client(std::move(c), std::move(expected)), server(std::move(s)));
  }
  TlsPair defaultPair() { return pair(clientCtx(), serverCtx(), {serverId_}); }

  // Bundle for a raw peer presenting a certificate built with `o`, issued by the mesh root.
  CertificateBundle rawBundle(const WorkloadCertOptions& o) { return mesh_.bundle(o); }

  void TearDown() override {
    // No session may leave stale entries in this thread's OpenSSL error queue.
    EXPECT_EQ(ERR_peek_error(), 0u) << "stale OpenSSL error left on the thread";
  }
};

// ---- happy path ---------------------------------------------------------------------------------

TEST_F(TlsSessionTest, MutualHandshakeAndDataBothWays) {
  TlsPair p = defaultPair();
  HandshakeOutcome hs = p.handshake();
  ASSERT_TRUE(hs.succeeded()) << (hs.client ? "" : hs.client.error().message()) << " / "
                              << (hs.server ? "" : hs.server.error().message());
  EXPECT_TRUE(p.toClient().empty()) << "server sent something after the handshake (tickets?)";
  ASSERT_NE(p.client().peerIdentity(), nullptr);
  ASSERT_NE(p.server().peerIdentity(), nullptr);
  EXPECT_EQ(*p.client().peerIdentity(), serverId_);
  EXPECT_EQ(*p.server().peerIdentity(), clientId_);
  EXPECT_EQ(p.client().alpn(), "h2");
  EXPECT_EQ(p.server().alpn(), "h2");
  EXPECT_EQ(p.client().version(), TLS1_3_VERSION);
  EXPECT_EQ(p.server().version(), TLS1_3_VERSION);
  EXPECT_EQ(p.client().cipherName(), "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(p.client().cipherSuiteId(), 0x1302);

  ASSERT_TRUE(p.clientWrite("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  ASSERT_TRUE(p.serverWrite("server says hi"));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.serverReceived().toString(), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_EQ(p.clientReceived().toString(), "server says hi");
}

TEST_F(TlsSessionTest, AcceptsAnyOfSeveralExpectedIdentities) {
  TlsPair p = pair(clientCtx(), serverCtx(),
                   {mesh_.identity("other", "svc"), serverId_, mesh_.identity("x", "y")});
  EXPECT_TRUE(p.handshake().succeeded());
}

TEST_F(TlsSessionTest, ServerSendsIntermediates) {
  TestPki pki(TestPki::Options{.trustDomain = "cluster.local", .useIntermediate = true});
  TlsPair p =
      pair(pki.clientContext("a", "b"), pki.serverContext("c", "d"), {pki.identity("c", "d")});
  HandshakeOutcome hs = p.handshake();
  EXPECT_TRUE(hs.succeeded()) << (hs.client ? "" : hs.client.error().message());
}

TEST_F(TlsSessionTest, RootRotationWithOverlapBundle) {
  TestPki next("cluster.local");
  // Old workloads trust old+new; a new server certificate comes from the new root.
  mesh_.addTrustedRoot(next.root().certPem);
  next.addTrustedRoot(mesh_.root().certPem);
  TlsPair p = pair(clientCtx(), next.serverContext("ns-server", "server-sa"), {serverId_});
  EXPECT_TRUE(p.handshake().succeeded());
  TlsPair q = pair(next.clientContext("ns-client", "client-sa"), serverCtx(), {serverId_});
  EXPECT_TRUE(q.handshake().succeeded());
}

TEST_F(TlsSessionTest, ClientDataRightAfterFinishedIsDelivered) {
  auto c = client(clientCtx(), {serverId_});
  auto s = server(serverCtx());
  ByteBuffer c2s, s2c, plain;
  ASSERT_TRUE(c->start(c2s));
  ASSERT_TRUE(s->feed(c2s, plain, s2c));
  auto r = c->feed(s2c, plain, c2s);  // client Finished now in c2s
  ASSERT_TRUE(r && r->handshakeDone);
  ASSERT_TRUE(c->write(bytesOf("early"), c2s));  // coalesced behind Finished
  auto rs = s->feed(c2s, plain, s2c);
  ASSERT_TRUE(rs) << rs.error().message();
  EXPECT_TRUE(rs->handshakeDone);
  EXPECT_EQ(plain.toString(), "early");
}

// ---- identity verification matrix
// ----------------------------------------------------------------

TEST_F(TlsSessionTest, ClientRejectsWrongServerIdentity) {
  Identity expected = mesh_.identity("ns-server", "someone-else");
  TlsPair p = pair(clientCtx(), serverCtx(), {expected});
  HandshakeOutcome hs = p.handshake();
  ASSERT_FALSE(hs.client);
  EXPECT_TRUE(hs.client.error().is(TlsErrc::kPeerIdentityRejected)) << hs.client.error().message();
  std::string msg = hs.client.error().message();
  EXPECT_NE(msg.find(expected.toUri()), std::string::npos) << msg;
  EXPECT_NE(msg.find(serverId_.toUri()), std::string::npos) << msg;
  EXPECT_FALSE(p.client().established());
  EXPECT_FALSE(p.server().established());
  EXPECT_EQ(p.client().peerIdentity(), nullptr);
  EXPECT_EQ(p.client().alertSent(), SSL_AD_BAD_CERTIFICATE);
  EXPECT_EQ(p.server().alertReceived(), SSL_AD_BAD_CERTIFICATE);
  EXPECT_FALSE(hs.server);  // the server saw the alert
  // A failed session stays failed.
  ByteBuffer out;
  EXPECT_TRUE(p.client().write(bytesOf("x"), out).error().is(TlsErrc::kInvalidState));
  EXPECT_TRUE(out.empty());
}

TEST_F(TlsSessionTest, ServerRejectsForeignTrustDomain) {
  // Signed by the mesh root, but claims another trust domain.
  WorkloadCertOptions o;
  o.uriSans = {"spiffe://evil.example/ns/ns-client/sa/client-sa"};
  auto creds = mesh_.credentials(o);
  TlsPair p = pair(TestPki::clientContext(creds), serverCtx(), {serverId_});
  HandshakeOutcome hs = p.handshake();
  ASSERT_FALSE(hs.server);
  EXPECT_TRUE(hs.server.error().is(TlsErrc::kPeerIdentityRejected)) << hs.server.error().message();
  EXPECT_NE(hs.server.error().message().find("evil.example"), std::string::npos);
  EXPECT_FALSE(p.server().established());
  EXPECT_EQ(p.server().alertSent(), SSL_AD_BAD_CERTIFICATE);
  EXPECT_EQ(p.client().alertReceived(), SSL_AD_BAD_CERTIFICATE);
  EXPECT_FALSE(hs.client);
  EXPECT_TRUE(p.serverReceived().empty());
}

TEST_F(TlsSessionTest, ForeignCaIsRejectedBothWays) {
  TestPki foreign("cluster.local");  // same trust domain, different root
  // The foreign side trusts our root, so only our side's check can fail.
  foreign.addTrustedRoot(mesh_.root().certPem);
  {
    TlsPair p = pair(foreign.clientContext("ns-client", "client-sa"), serverCtx(), {serverId_});
    HandshakeOutcome hs = p.handshake();
    ASSERT_FALSE(hs.server);
    EXPECT_TRUE(hs.server.error().is(TlsErrc::kPeerCertificateInvalid))
        << hs.server.error().message();
    EXPECT_EQ(p.server().alertSent(), SSL_AD_UNKNOWN_CA);
  }
  {
    TlsPair p = pair(clientCtx(), foreign.serverContext("ns-server", "server-sa"), {serverId_});
    HandshakeOutcome hs = p.handshake();
    ASSERT_FALSE(hs.client);
    EXPECT_TRUE(hs.client.error().is(TlsErrc::kPeerCertificateInvalid))
        << hs.client.error().message();
    EXPECT_NE(hs.client.error().message().find("local issuer"), std::string::npos)
        << hs.client.error().message();
    EXPECT_EQ(p.client().alertSent(), SSL_AD_UNKNOWN_CA);
    EXPECT_FALSE(p.server().established());
  }
}

TEST_F(TlsSessionTest, ExpiredAndNotYetValidCertificatesAreRejected) {
  struct Case {
    const char* name;
    Clock::time_point notBefore;
    Clock::time_point notAfter;
    int alert;
    const char* reason;
  };
  auto now = Clock::now();
  for (const Case& c :
       {Case{"expired", now - std::chrono::hours(48), now - std::chrono::hours(24),
             SSL_AD_CERTIFICATE_EXPIRED, "expired"},
        Case{"not yet valid", now + std::chrono::hours(1), now + std::chrono::hours(48),
             SSL_AD_BAD_CERTIFICATE, "not yet valid"}}) {
    WorkloadCertOptions o = mesh_.options("ns-client", "client-sa");
    o.notBefore = c.notBefore;
    o.notAfter = c.notAfter;
    // As client certificate.
    TlsPair p = pair(TestPki::clientContext(mesh_.credentials(o)), serverCtx(), {serverId_});
    HandshakeOutcome hs = p.handshake();
    ASSERT_FALSE(hs.server) << c.name;
    EXPECT_TRUE(hs.server.error().is(TlsErrc::kPeerCertificateInvalid)) << c.name;
    EXPECT_NE(hs.server.error().message().find(c.reason), std::string::npos)
        << hs.server.error().message();
    EXPECT_EQ(p.server().alertSent(), c.alert) << c.name;
    // As server certificate.
    WorkloadCertOptions so = mesh_.options("ns-server", "server-sa");
    so.notBefore = c.notBefore;
    so.notAfter = c.notAfter;
    TlsPair q = pair(clientCtx(), TestPki::serverContext(mesh_.credentials(so)), {serverId_});
    HandshakeOutcome hq = q.handshake();
    ASSERT_FALSE(hq.client) << c.name;
    EXPECT_TRUE(hq.client.error().is(TlsErrc::kPeerCertificateInvalid)) << c.name;
    EXPECT_EQ(q.client().alertSent(), c.alert) << c.name;
  }
}

TEST_F(TlsSessionTest, CaLeafIsRejectedBothWays) {
  WorkloadCertOptions o = mesh_.options("ns-client", "client-sa");
  o.isCa = true;
  TlsPair p = pair(TestPki::clientContext(mesh_.credentials(o)), serverCtx(), {serverId_});
  HandshakeOutcome hs = p.handshake();
  ASSERT_FALSE(hs.server);
  EXPECT_TRUE(hs.server.error().is(TlsErrc::kPeerCertificateInvalid))
      << hs.server.error().message();
  EXPECT_NE(hs.server.error().message().find("CA:TRUE"), std::string::npos);
  EXPECT_EQ(p.server().alertSent(), SSL_AD_BAD_CERTIFICATE);

  WorkloadCertOptions so = mesh_.options("ns-server", "server-sa");
  so.isCa = true;
  TlsPair q = pair(clientCtx(), TestPki::serverContext(mesh_.credentials(so)), {serverId_});
  HandshakeOutcome hq = q.handshake();
  ASSERT_FALSE(hq.client);
  EXPECT_TRUE(hq.client.error().is(TlsErrc::kPeerCertificateInvalid));
}

TEST_F(TlsSessionTest, WrongExtendedKeyUsageIsRejected) {
  WorkloadCertOptions o = mesh_.options("ns-client", "client-sa");
  o.clientAuth = false;  // serverAuth only, presented as a client certificate
  TlsPair p = pair(TestPki::clientContext(mesh_.credentials(o)), serverCtx(), {serverId_});
  HandshakeOutcome hs = p.handshake();
  ASSERT_FALSE(hs.server);
  EXPECT_TRUE(hs.server.error().is(TlsErrc::kPeerCertificateInvalid))
      << hs.server.error().message();
  EXPECT_EQ(p.server().alertSent(), SSL_AD_UNSUPPORTED_CERTIFICATE);

  WorkloadCertOptions so = mesh_.options("ns-server", "server-sa");
  so.serverAuth = false;
  TlsPair q = pair(clientCtx(), TestPki::serverContext(mesh_.credentials(so)), {serverId_});
  HandshakeOutcome hq = q.handshake();
  ASSERT_FALSE(hq.client);
  EXPECT_TRUE(hq.client.error().is(TlsErrc::kPeerCertificateInvalid));
}

// Certificates our own Credentials refuse to load are presented by a raw OpenSSL peer.
struct BadSanCase {
  const char* name;
  WorkloadCertOptions (*make)(const TestPki&);
  const char* reason;
};

const BadSanCase kBadSanCases[] = {
    {"two URI SANs",
     [](const TestPki& pki) {
       auto o = pki.options("ns-client", "client-sa");
       o.uriSans.push_back(pki.identity("ns-client", "other").toUri());
       return o;
     },
     "2 URI SANs"},
    {"DNS SAN only",
     [](const TestPki&) {
       WorkloadCertOptions o;
       o.dnsSans = {"client.ns-client.svc.cluster.local"};
       return o;
     },
     "no URI SAN"},
    {"no SAN at all",
     [](const TestPki&) {
       WorkloadCertOptions o;
       o.commonName = "client";
       return o;
     },
     "no subjectAltName"},
    {"non-SPIFFE URI",
     [](const TestPki&) {
       WorkloadCertOptions o;
       o.uriSans = {"spiffe://cluster.local/ns/a/sa/b/extra"};
       return o;
     },
     "not a SPIFFE id"},
};

TEST_F(TlsSessionTest, ServerRejectsClientCertificatesWithoutExactlyOneSpiffeSan) {
  for (const auto& c : kBadSanCases) {
    RawPeerConfig cfg;
    cfg.alpn = {"h2"};
    cfg.credentials = rawBundle(c.make(mesh_));
    RawTlsPeer peer(cfg);
    auto s = server(serverCtx());
    RawOutcome out = testing::pumpRaw(*s, peer);
    ASSERT_FALSE(out.ours) << c.name;
    EXPECT_TRUE(out.ours.error().is(TlsErrc::kPeerIdentityRejected))
        << c.name << ": " << out.ours.error().message();
    EXPECT_NE(out.ours.error().message().find(c.reason), std::string::npos)
        << c.name << ": " << out.ours.error().message();
    EXPECT_EQ(s->alertSent(), SSL_AD_BAD_CERTIFICATE) << c.name;
    EXPECT_TRUE(peer.failed()) << c.name;
  }
}

TEST_F(TlsSessionTest, ClientRejectsServerCertificatesWithoutExactlyOneSpiffeSan) {
  for (const auto& c : kBadSanCases) {
    RawPeerConfig cfg;
    cfg.server = true;
    cfg.alpn = {"h2"};
    cfg.credentials = rawBundle(c.make(mesh_));
    cfg.credentials.rootCertsPem = mesh_.rootsPem();
    cfg.requireClientCert = true;
    RawTlsPeer peer(cfg);
    auto cl = client(clientCtx(), {mesh_.identity("ns-client", "client-sa")});
    RawOutcome out = testing::pumpRaw(*cl, peer);
    ASSERT_FALSE(out.ours) << c.name;
    EXPECT_TRUE(out.ours.error().is(TlsErrc::kPeerIdentityRejected))
        << c.name << ": " << out.ours.error().message();
    EXPECT_EQ(cl->alertSent(), SSL_AD_BAD_CERTIFICATE) << c.name;
    EXPECT_FALSE(cl->established());
  }
}

TEST_F(TlsSessionTest, ServerRequiresClientCertificate) {
  RawPeerConfig cfg;
  cfg.alpn = {"h2"};
  cfg.credentials.rootCertsPem = mesh_.rootsPem();  // verifies the server, presents nothing
  RawTlsPeer peer(cfg);
  auto s = server(serverCtx());
  RawOutcome out = testing::pumpRaw(*s, peer);
  ASSERT_FALSE(out.ours);
  EXPECT_FALSE(s->established());
  EXPECT_EQ(s->alertSent(), SSL_AD_CERTIFICATE_REQUIRED);
  EXPECT_NE(out.peerError.find("certificate required"), std::string::npos) << out.peerError;
}

TEST_F(TlsSessionTest, RawPeerWithValidCertificateInteroperates) {
  // Sanity check of the raw peer itself: with a proper certificate it succeeds, so the failures
  // above are caused by the certificates.
  RawPeerConfig cfg;
  cfg.alpn = {"h2"};
  cfg.credentials = mesh_.bundle("ns-client", "client-sa");
  RawTlsPeer peer(cfg);
  auto s = server(serverCtx());
  RawOutcome out = testing::pumpRaw(*s, peer);
  ASSERT_TRUE(out.ours) << out.ours.error().message();
  EXPECT_TRUE(s->established());
  EXPECT_EQ(*s->peerIdentity(), clientId_);
}

// ---- protocol profile
// -----------------------------------------------------------------------------

TEST_F(TlsSessionTest, Tls12OnlyPeersFailUnlessAllowed) {
  auto rawClient = [&] {
    RawPeerConfig cfg;
    cfg.maxVersion = TLS1_2_VERSION;
    cfg.alpn = {"h2"};
    cfg.credentials = mesh_.bundle("ns-client", "client-sa");
    return cfg;
  };
  {
    RawTlsPeer peer(rawClient());
    auto s = server(serverCtx());
    RawOutcome out = testing::pumpRaw(*s, peer);
    ASSERT_FALSE(out.ours);
    EXPECT_EQ(s->alertSent(), SSL_AD_PROTOCOL_VERSION);
    EXPECT_TRUE(out.peerFailed);
  }
  {
    RawTlsPeer peer(rawClient());
    auto s = server(serverCtx(TlsOptions{.allowTls12 = true}));
    RawOutcome out = testing::pumpRaw(*s, peer);
    ASSERT_TRUE(out.ours) << out.ours.error().message();
    EXPECT_EQ(s->version(), TLS1_2_VERSION);
    EXPECT_EQ(s->cipherName(), "ECDHE-ECDSA-AES256-GCM-SHA384");
    EXPECT_EQ(*s->peerIdentity(), clientId_);
  }
  auto rawServer = [&] {
    RawPeerConfig cfg;
    cfg.server = true;
    cfg.maxVersion = TLS1_2_VERSION;
    cfg.alpn = {"h2"};
    cfg.credentials = mesh_.bundle("ns-server", "server-sa");
    return cfg;
  };
  {
    RawTlsPeer peer(rawServer());
    auto c = client(clientCtx(), {serverId_});
    RawOutcome out = testing::pumpRaw(*c, peer);
    ASSERT_FALSE(out.ours);
    EXPECT_FALSE(c->established());
  }
  {
    RawTlsPeer peer(rawServer());
    auto c = client(clientCtx(TlsOptions{.allowTls12 = true}), {serverId_});
    RawOutcome out = testing::pumpRaw(*c, peer);
    ASSERT_TRUE(out.ours) << out.ours.error().message();
    EXPECT_EQ(c->version(), TLS1_2_VERSION);
  }
  // Both sides allowing 1.2 still negotiate 1.3.
  TlsPair p = pair(clientCtx(TlsOptions{.allowTls12 = true}),
                   serverCtx(TlsOptions{.allowTls12 = true}), {serverId_});
  ASSERT_TRUE(p.handshake().succeeded());
  EXPECT_EQ(p.client().version(), TLS1_3_VERSION);
}

TEST_F(TlsSessionTest, OldProtocolVersionsAreRefusedEvenWithTls12Allowed) {
  RawPeerConfig cfg;
  cfg.minVersion = TLS1_VERSION;
  cfg.maxVersion = TLS1_1_VERSION;
  cfg.alpn = {"h2"};
  cfg.tls12Ciphers = "DEFAULT:@SECLEVEL=0";
  cfg.credentials = mesh_.bundle("ns-client", "client-sa");
  RawTlsPeer peer(cfg);
  auto s = server(serverCtx(TlsOptions{.allowTls12 = true}));
  RawOutcome out = testing::pumpRaw(*s, peer);
  ASSERT_FALSE(out.ours);
  EXPECT_FALSE(s->established());
}

TEST_F(TlsSessionTest, RenegotiationIsRefusedOnTls12) {
  RawPeerConfig cfg;
  cfg.maxVersion = TLS1_2_VERSION;
  cfg.alpn = {"h2"};
  cfg.credentials = mesh_.bundle("ns-client", "client-sa");
  RawTlsPeer peer(cfg);
  auto s = server(serverCtx(TlsOptions{.allowTls12 = true}));
  ByteBuffer plain;
  RawOutcome out = testing::pumpRaw(*s, peer, 16, &plain);
  ASSERT_TRUE(out.ours) << out.ours.error().message();
  ASSERT_EQ(SSL_renegotiate(peer.ssl()), 1);
  ByteBuffer none;
  peer.step(none);  // sends the renegotiation ClientHello
  ByteBuffer toPeer;
  auto r = s->feed(peer.out(), plain, toPeer);
  EXPECT_EQ(s->alertSent(), SSL_AD_NO_RENEGOTIATION);
  (void)r;
  peer.step(toPeer);
  EXPECT_EQ(SSL_renegotiate_pending(peer.ssl()), 1) << "renegotiation must not complete";
  ERR_clear_error();
}

TEST_F(TlsSessionTest, ServerRequiresAlpnH2) {
  for (const std::vector<std::string>& offered :
       {std::vector<std::string>{}, std::vector<std::string>{"http/1.1"},
        std::vector<std::string>{"h3", "spdy/3"}}) {
    RawPeerConfig cfg;
    cfg.alpn = offered;
    cfg.credentials = mesh_.bundle("ns-client", "client-sa");
    RawTlsPeer peer(cfg);
    auto s = server(serverCtx());
    RawOutcome out = testing::pumpRaw(*s, peer);
    ASSERT_FALSE(out.ours) << offered.size();
    EXPECT_FALSE(s->established());
    EXPECT_EQ(s->alertSent(), SSL_AD_NO_APPLICATION_PROTOCOL);
    EXPECT_TRUE(out.peerFailed);
  }
  // h2 among others is fine.
  RawPeerConfig cfg;
  cfg.alpn = {"http/1.1", "h2"};
  cfg.credentials = mesh_.bundle("ns-client", "client-sa");
  RawTlsPeer peer(cfg);
  auto s = server(serverCtx());
  ASSERT_TRUE(testing::pumpRaw(*s, peer).ours);
  EXPECT_EQ(s->alpn(), "h2");
}

TEST_F(TlsSessionTest, ClientRequiresServerToSelectH2) {
  for (const std::vector<std::string>& serverProtos :
       {std::vector<std::string>{}, std::vector<std::string>{"http/1.1"}}) {
    RawPeerConfig cfg;
    cfg.server = true;
    cfg.alpn = serverProtos;  // never selects h2
    cfg.credentials = mesh_.bundle("ns-server", "server-sa");
    RawTlsPeer peer(cfg);
    auto c = client(clientCtx(), {serverId_});
    ByteBuffer plain;
    RawOutcome out = testing::pumpRaw(*c, peer, 16, &plain);
    ASSERT_FALSE(out.ours);
    EXPECT_TRUE(out.ours.error().is(TlsErrc::kAlpnMismatch)) << out.ours.error().message();
    EXPECT_FALSE(c->established());
    EXPECT_FALSE(peer.established()) << "the server must not see a completed handshake";
  }
}

TEST_F(TlsSessionTest, OnlyAesGcmSuites) {
  {
    RawPeerConfig cfg;
    cfg.alpn = {"h2"};
    cfg.tls13Suites = "TLS_CHACHA20_POLY1305_SHA256";
    cfg.credentials = mesh_.bundle("ns-client", "client-sa");
    RawTlsPeer peer(cfg);
    auto s = server(serverCtx());
    RawOutcome out = testing::pumpRaw(*s, peer);
    ASSERT_FALSE(out.ours);
    EXPECT_EQ(s->alertSent(), SSL_AD_HANDSHAKE_FAILURE);
  }
  {
    RawPeerConfig cfg;
    cfg.alpn = {"h2"};
    cfg.tls13Suites = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
    cfg.credentials = mesh_.bundle("ns-client", "client-sa");
    RawTlsPeer peer(cfg);
    auto s = server(serverCtx());
    RawOutcome out = testing::pumpRaw(*s, peer);
    ASSERT_TRUE(out.ours) << out.ours.error().message();
    EXPECT_EQ(s->cipherName(), "TLS_AES_128_GCM_SHA256");
  }
  // What our client offers: exactly the two AES-GCM suites (checked on the raw server).
  RawPeerConfig cfg;
  cfg.server = true;
  cfg.alpn = {"h2"};
  cfg.tls13Suites = "TLS_CHACHA20_POLY1305_SHA256";
  cfg.credentials = mesh_.bundle("ns-server", "server-sa");
  RawTlsPeer peer(cfg);
  auto c = client(clientCtx(), {serverId_});
  RawOutcome out = testing::pumpRaw(*c, peer);
  EXPECT_FALSE(out.ours);
  EXPECT_TRUE(peer.failed());
}

TEST_F(TlsSessionTest, ClientSendsNoSniAndOffersNoResumption) {
  RawPeerConfig cfg;
  cfg.server = true;
  cfg.alpn = {"h2"};
  cfg.credentials = mesh_.bundle("ns-server", "server-sa");
  RawTlsPeer peer(cfg);
  auto c = client(clientCtx(), {serverId_});
  RawOutcome out = testing::pumpRaw(*c, peer);
  ASSERT_TRUE(out.ours) << out.ours.error().message();
  ASSERT_TRUE(peer.sawClientHello);
  EXPECT_FALSE(peer.clientHelloHadSni);
  auto has = [&](int ext) {
    return std::find(peer.clientHelloExtensions.begin(), peer.clientHelloExtensions.end(), ext) !=
           peer.clientHelloExtensions.end();
  };
  EXPECT_TRUE(has(TLSEXT_TYPE_application_layer_protocol_negotiation));
  EXPECT_FALSE(has(TLSEXT_TYPE_server_name));
  EXPECT_FALSE(has(TLSEXT_TYPE_psk));
  EXPECT_FALSE(has(TLSEXT_TYPE_early_data));
  EXPECT_FALSE(has(TLSEXT_TYPE_session_ticket));

  // The raw server is a control: a raw client does send SNI when asked.
  RawPeerConfig rc;
  rc.alpn = {"h2"};
  rc.sni = "example.com";
  rc.credentials = mesh_.bundle("ns-client", "client-sa");
  RawTlsPeer rawClient(rc);
  RawTlsPeer rawServer(cfg);
  rawServer.step(rawClient.out());
  EXPECT_TRUE(rawServer.clientHelloHadSni);
  // And our server accepts (ignores) SNI.
  RawTlsPeer sniClient(rc);
  auto s = server(serverCtx());
  EXPECT_TRUE(testing::pumpRaw(*s, sniClient).ours);
}

TEST_F(TlsSessionTest, ServerIssuesNoSessionTickets) {
  RawPeerConfig cfg;
  cfg.alpn = {"h2"};
  cfg.credentials = mesh_.bundle("ns-client", "client-sa");
  RawTlsPeer peer(cfg);
  auto s = server(serverCtx());
  RawOutcome out = testing::pumpRaw(*s, peer);
  ASSERT_TRUE(out.ours);
  ByteBuffer toPeer;
  ASSERT_TRUE(s->write(bytesOf("data"), toPeer));
  peer.step(toPeer);
  EXPECT_EQ(peer.plaintext().toString(), "data");
  EXPECT_EQ(peer.newSessions, 0);

  // Control: the same raw client does count tickets from a ticket-issuing server.
  RawPeerConfig sc;
  sc.server = true;
  sc.alpn = {"h2"};
  sc.credentials = mesh_.bundle("ns-server", "server-sa");
  RawTlsPeer ticketServer(sc);
  RawTlsPeer control(cfg);
  for (int i = 0; i < 8; ++i) {
    ticketServer.step(control.out());
    control.step(ticketServer.out());
  }
  EXPECT_GT(control.newSessions, 0);
}

// ---- data path
// ------------------------------------------------------------------------------------

TEST_F(TlsSessionTest, BulkTransferIsByteExactWithFullRecords) {
  TlsPair p = defaultPair();
  ASSERT_TRUE(p.handshake().succeeded());
  constexpr size_t kSize = 8 << 20;
  const std::string up = randomBytes(kSize, 1);
  const std::string down = randomBytes(kSize, 2);

  // Client -> server through write(ByteBuffer&): block-aligned input, full records.
  ByteBuffer plain;
  plain.append(up);
  ByteBuffer wire;
  ASSERT_TRUE(p.client().write(plain, wire));
  EXPECT_TRUE(plain.empty());
  std::vector<testing::RecordInfo> records;
  ASSERT_TRUE(testing::parseRecords(wire, &records));
  ASSERT_EQ(records.size(), kSize / TlsSession::kMaxRecordPlaintext);
  for (const auto& r : records) {
    EXPECT_EQ(r.type, 23);  // application_data (TLS 1.3 outer type)
    EXPECT_EQ(r.length, TlsSession::kMaxRecordPlaintext + 17);
  }
  EXPECT_EQ(wire.size(),
            records.size() * (TlsSession::kMaxRecordPlaintext + TlsSession::kTls13RecordOverhead));
  // Feed in irregular pieces, to split records and headers.
  std::string ciphertext = wire.toString();
  ByteBuffer received, out;
  std::mt19937 rng(7);
  size_t off = 0;
  while (off < ciphertext.size()) {
    size_t n = std::min<size_t>(ciphertext.size() - off, 1 + rng() % 40000);
    auto r = p.server().feed(bytesOf(std::string_view(ciphertext).substr(off, n)), received, out);
    ASSERT_TRUE(r) << r.error().message();
    off += n;
  }
  EXPECT_TRUE(out.empty());
  ASSERT_EQ(received.size(), kSize);
  EXPECT_TRUE(received.toString() == up);

  // Server -> client through write(span).
  ByteBuffer wire2;
  ASSERT_TRUE(p.server().write(bytesOf(down), wire2));
  records.clear();
  ASSERT_TRUE(testing::parseRecords(wire2, &records));
  EXPECT_EQ(records.size(), kSize / TlsSession::kMaxRecordPlaintext);
  ByteBuffer received2;
  auto r = p.client().feed(wire2, received2, out);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(wire2.empty());
  EXPECT_TRUE(received2.toString() == down);
}

TEST_F(TlsSessionTest, WriteByteBufferCoalescesSmallFragments) {
  TlsPair p = defaultPair();
  ASSERT_TRUE(p.handshake().succeeded());
  ByteBuffer plain;
  const std::string data = randomBytes(3 * ByteBuffer::kBlockSize, 3);
  plain.append(data);
  // Leave a 50-byte fragment at the front (end of the first block).
  plain.drain(ByteBuffer::kBlockSize - 50);
  ASSERT_EQ(plain.front().size(), 50u);
  ByteBuffer wire;
  ASSERT_TRUE(p.client().write(plain, wire));
  std::vector<testing::RecordInfo> records;
  ASSERT_TRUE(testing::parseRecords(wire, &records));
  // 50 + 2 * 16384 bytes: two full records and the 50-byte tail, not a 50-byte record first.
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].length, TlsSession::kMaxRecordPlaintext + 17) << "tiny first record";
  EXPECT_EQ(records[1].length, TlsSession::kMaxRecordPlaintext + 17);
  EXPECT_EQ(records[2].length, 50u + 17);
  ByteBuffer received, out;
  ASSERT_TRUE(p.server().feed(wire, received, out));
  EXPECT_EQ(received.toString(), data.substr(ByteBuffer::kBlockSize - 50));
}

TEST_F(TlsSessionTest, ReleaseIdleBuffersStillTransfers) {
  TlsOptions o{.releaseIdleBuffers = true};
  TlsPair p = pair(clientCtx(o), serverCtx(o), {serverId_});
  ASSERT_TRUE(p.handshake().succeeded());
  const std::string data = randomBytes(100000, 9);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(p.clientWrite(data));
    ASSERT_TRUE(p.serverWrite(data));
    ASSERT_TRUE(p.pump());
  }
  EXPECT_EQ(p.serverReceived().size(), 3 * data.size());
  EXPECT_EQ(p.clientReceived().size(), 3 * data.size());
}

TEST_F(TlsSessionTest, CloseNotifyAndHalfClose) {
  TlsPair p = defaultPair();
  ASSERT_TRUE(p.handshake().succeeded());
  ASSERT_TRUE(p.clientWrite("last words"));
  ByteBuffer out;
  p.client().close(p.toServer());
  EXPECT_TRUE(p.client().closeSent());
  EXPECT_TRUE(p.client().write(bytesOf("more"), out).error().is(TlsErrc::kInvalidState));
  ASSERT_TRUE(p.pump());
  EXPECT_TRUE(p.serverPeerClosed());
  EXPECT_TRUE(p.server().peerClosed());
  EXPECT_EQ(p.serverReceived().toString(), "last words");
  // The other direction still works.
  ASSERT_TRUE(p.serverWrite("reply"));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.clientReceived().toString(), "reply");
  EXPECT_FALSE(p.clientPeerClosed());
  p.server().close(p.toClient());
  ASSERT_TRUE(p.pump());
  EXPECT_TRUE(p.clientPeerClosed());
  // Input after close_notify is ignored.
  ByteBuffer plain;
  auto r = p.server().feed(bytesOf("garbage after close"), plain, out);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->peerClosed);
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsSessionTest, GarbageDuringHandshakeFailsCleanly) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto s = server(serverCtx());
    std::string junk = randomBytes(1 + seed * 97, seed);
    if (seed % 2 == 0) {
      junk[0] = 0x16;  // looks like a handshake record
      junk[1] = 0x03;
    }
    ByteBuffer plain, out;
    auto r = s->feed(bytesOf(junk), plain, out);
    if (r) {
      // A short plausible prefix just waits for more.
      EXPECT_FALSE(r->handshakeDone);
      continue;
    }
    EXPECT_TRUE(s->failed());
    EXPECT_TRUE(plain.empty());
    auto again = s->feed(bytesOf("x"), plain, out);
    ASSERT_FALSE(again);
    EXPECT_TRUE(again.error().is(TlsErrc::kInvalidState));
  }
  // Plain HTTP at a TLS port: an error (OpenSSL sends no alert to a non-TLS peer).
  {
    auto s = server(serverCtx());
    ByteBuffer plain, out;
    auto r = s->feed(bytesOf("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), plain, out);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(TlsErrc::kHandshakeFailed)) << r.error().message();
  }
  // A well-framed handshake record with a malformed ClientHello: a decode_error alert is queued.
  {
    auto s = server(serverCtx());
    ByteBuffer plain, out;
    const uint8_t bogus[] = {0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00,
                             0x00, 0x04, 0x03, 0x03, 0x00, 0x00};
    auto r = s->feed(std::span(bogus), plain, out);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(TlsErrc::kHandshakeFailed)) << r.error().message();
    std::vector<testing::RecordInfo> records;
    ASSERT_TRUE(testing::parseRecords(out, &records));
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].type, 21);  // alert
    EXPECT_EQ(s->alertSent(), SSL_AD_DECODE_ERROR);
  }
}

TEST_F(TlsSessionTest, TamperedRecordIsDetected) {
  TlsPair p = defaultPair();
  ASSERT_TRUE(p.handshake().succeeded());
  ByteBuffer wire;
  ASSERT_TRUE(p.client().write(bytesOf("sensitive payload"), wire));
  std::string bytes = wire.toString();
  bytes[bytes.size() - 3] ^= 0x01;
  ByteBuffer plain, out;
  auto r = p.server().feed(bytesOf(bytes), plain, out);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(TlsErrc::kRecordError)) << r.error().message();
  EXPECT_TRUE(plain.empty());
  EXPECT_EQ(p.server().alertSent(), SSL_AD_BAD_RECORD_MAC);
  EXPECT_FALSE(out.empty());
}

TEST_F(TlsSessionTest, KeyUpdateFromPeerIsAnswered) {
  RawPeerConfig cfg;
  cfg.server = true;
  cfg.alpn = {"h2"};
  cfg.credentials = mesh_.bundle("ns-server", "server-sa");
  RawTlsPeer peer(cfg);
  auto c = client(clientCtx(), {serverId_});
  ByteBuffer plain;
  ASSERT_TRUE(testing::pumpRaw(*c, peer, 16, &plain).ours);
  ASSERT_EQ(SSL_key_update(peer.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
  ASSERT_TRUE(peer.write("after update"));
  ByteBuffer toPeer;
  auto r = c->feed(peer.out(), plain, toPeer);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(plain.toString(), "after update");
  // OpenSSL answers the requested KeyUpdate with our next write (RFC 8446 §4.6.3 allows this).
  ASSERT_TRUE(c->write(bytesOf("with new keys"), toPeer));
  ASSERT_TRUE(peer.step(toPeer));
  EXPECT_EQ(peer.plaintext().toString(), "with new keys");
}

TEST_F(TlsSessionTest, StaleErrorsOnTheThreadDoNotPoisonSessions) {
  TlsPair p = defaultPair();
  ERR_raise(ERR_LIB_USER, 1);  // left behind by unrelated code on this thread
  ASSERT_TRUE(p.handshake().succeeded());
  ERR_raise(ERR_LIB_USER, 2);
  ASSERT_TRUE(p.clientWrite("ping"));
  ERR_raise(ERR_LIB_USER, 3);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.serverReceived().toString(), "ping");
}

TEST_F(TlsSessionTest, ApiMisuse) {
  auto ctx = clientCtx();
  auto noIds = TlsSession::client(ctx, {});
  ASSERT_FALSE(noIds);
  EXPECT_TRUE(noIds.error().is(TlsErrc::kInvalidArgument));
  EXPECT_FALSE(TlsSession::server(ctx));
  EXPECT_FALSE(TlsSession::client(serverCtx(), {serverId_}));
  auto c = client(ctx, {serverId_});
  ByteBuffer out;
  EXPECT_TRUE(c->write(bytesOf("x"), out).error().is(TlsErrc::kInvalidState));
  c->close(out);  // no-op before the handshake
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(c->peerIdentity(), nullptr);
  EXPECT_EQ(c->version(), 0);
  EXPECT_EQ(c->cipherName(), "");
}

TEST_F(TlsSessionTest, ContextIsSharedAcrossThreads) {
  auto cctx = clientCtx();
  auto sctx = serverCtx();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto c = TlsSession::client(cctx, {serverId_});
        auto s = TlsSession::server(sctx);
        if (c && s && testing::pumpHandshake(**c, **s).succeeded()) {
          ++ok;
        }
      }
      EXPECT_EQ(ERR_peek_error(), 0u);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 40);
}

}  // namespace
}  // namespace zt::tls
