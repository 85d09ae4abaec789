#include "ztunnel/tls/ktls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>

#include "tests/support/test_pki.h"
#include "tests/support/tls_pump.h"
#include "ztunnel/tls/tls_session.h"

namespace zt::tls {
namespace {

std::vector<uint8_t> unhex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string tohex(std::span<const uint8_t> b) {
  static const char* k = "0123456789abcdef";
  std::string out;
  for (uint8_t c : b) {
    out += k[c >> 4];
    out += k[c & 15];
  }
  return out;
}

// RFC 8448 §3 (Simple 1-RTT Handshake), TLS_AES_128_GCM_SHA256.
constexpr std::string_view kClientApSecret =
    "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
constexpr std::string_view kServerApSecret =
    "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";

TEST(KtlsKeysTest, Rfc8448ApplicationTrafficKeys) {
  auto server = deriveTrafficKeys(0x1301, unhex(kServerApSecret));
  ASSERT_TRUE(server) << server.error().message();
  EXPECT_EQ(tohex(server->key), "9f02283b6c9c07efc26bb9f2ac92e356");
  EXPECT_EQ(tohex(server->iv), "cf782b88dd83549aadf1e984");
  auto client = deriveTrafficKeys(0x1301, unhex(kClientApSecret));
  ASSERT_TRUE(client) << client.error().message();
  EXPECT_EQ(tohex(client->key), "17422dda596ed5d9acd890e3c63f5051");
  EXPECT_EQ(tohex(client->iv), "5b78923dee08579033e523d9");
}

TEST(KtlsKeysTest, CryptoInfoLayout) {
  KernelTlsCryptoInfo info;
  ASSERT_TRUE(makeKernelTlsCryptoInfo(0x1301, unhex(kServerApSecret), 0x0102030405060708, info));
  EXPECT_EQ(info.size, sizeof(tls12_crypto_info_aes_gcm_128));
  EXPECT_EQ(info.aes128.info.version, TLS_1_3_VERSION);
  EXPECT_EQ(info.aes128.info.cipher_type, TLS_CIPHER_AES_GCM_128);
  EXPECT_EQ(tohex({info.aes128.key, 16}), "9f02283b6c9c07efc26bb9f2ac92e356");
  EXPECT_EQ(tohex({info.aes128.salt, 4}), "cf782b88");
  EXPECT_EQ(tohex({info.aes128.iv, 8}), "dd83549aadf1e984");
  EXPECT_EQ(tohex({info.aes128.rec_seq, 8}), "0102030405060708");

  KernelTlsCryptoInfo info256;
  std::vector<uint8_t> secret48(48, 0x42);
  ASSERT_TRUE(makeKernelTlsCryptoInfo(0x1302, secret48, 0, info256));
  EXPECT_EQ(info256.size, sizeof(tls12_crypto_info_aes_gcm_256));
  EXPECT_EQ(info256.aes256.info.cipher_type, TLS_CIPHER_AES_GCM_256);
  EXPECT_FALSE(makeKernelTlsCryptoInfo(0x1303, secret48, 0, info256));
}

TEST(KtlsProbeTest, ProbeReportsWithoutCrashing) {
  KernelTlsProbe probe = probeKernelTls();
  EXPECT_FALSE(probe.reason.empty());
  if (!probe.available) {
    EXPECT_NE(probe.sysErrno, 0);
    // On machines without CONFIG_TLS (this project's CI) the ULP is unknown.
    if (probe.sysErrno == ENOENT) {
      EXPECT_NE(probe.reason.find("CONFIG_TLS"), std::string::npos) << probe.reason;
    }
  }
  std::cout << "kTLS probe: " << (probe.available ? "available" : "unavailable") << " - "
            << probe.reason << "\n";
}

TEST(KtlsDecisionTest, DecisionTable) {
  KernelTlsProbe yes{true, 0, "ok"};
  KernelTlsProbe no{false, ENOENT, "setsockopt(TCP_ULP, \"tls\"): No such file or directory"};
  struct Row {
    KernelTlsWish wish;
    const KernelTlsProbe& probe;
    KernelTlsMode mode;
    bool fatal;
  };
  for (const Row& r : {Row{KernelTlsWish::kDisabled, yes, KernelTlsMode::kUserspace, false},
                       Row{KernelTlsWish::kDisabled, no, KernelTlsMode::kUserspace, false},
                       Row{KernelTlsWish::kAuto, yes, KernelTlsMode::kKernel, false},
                       Row{KernelTlsWish::kAuto, no, KernelTlsMode::kUserspace, false},
                       Row{KernelTlsWish::kRequired, yes, KernelTlsMode::kKernel, false},
                       Row{KernelTlsWish::kRequired, no, KernelTlsMode::kUserspace, true}}) {
    KernelTlsDecision d = decideKernelTls(r.wish, r.probe);
    EXPECT_EQ(d.mode, r.mode);
    EXPECT_EQ(d.fatal, r.fatal);
    EXPECT_EQ(d.logLine.find('\n'), std::string::npos);
    EXPECT_TRUE(d.logLine.starts_with("kernel TLS: ")) << d.logLine;
    if (!r.probe.available && r.wish != KernelTlsWish::kDisabled) {
      EXPECT_NE(d.logLine.find(r.probe.reason), std::string::npos) << d.logLine;
    }
    EXPECT_EQ(d.level, r.fatal ? spdlog::level::err : spdlog::level::info);
  }
}

TEST(KtlsDecisionTest, LogsExactlyOneLineForTheRealProbe) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("ktls-test", sink);
  logger->set_level(spdlog::level::trace);
  logger->set_pattern("%v");
  spdlog::set_default_logger(logger);
  KernelTlsDecision d = decideKernelTls(KernelTlsWish::kAuto, probeKernelTls());
  logKernelTlsDecision(d);
  spdlog::set_default_logger(previous);
  std::string text = captured.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_EQ(text, d.logLine + "\n");
}

// With captured secrets, the state handed to the kernel must decrypt the next record exactly as
// the kernel would (key, salt/iv split and sequence number).
class KtlsSessionTest : public ::testing::Test {
 protected:
  testing::TestPki pki_;
  TlsOptions capture_{.captureTrafficSecrets = true};

  testing::TlsPair makePair(TlsOptions o) {
    auto c =
        TlsSession::client(pki_.clientContext("a", "client", o), {pki_.identity("b", "server")});
    auto s = TlsSession::server(pki_.serverContext("b", "server", o));
    EXPECT_TRUE(c && s);
    return testing::TlsPair(std::move(*c), std::move(*s));
  }

  // Decrypts one TLS 1.3 record with the kernel crypto info; returns the inner plaintext.
  static std::string openRecord(const KernelTlsCryptoInfo& info, uint16_t suite,
                                const std::string& record) {
    const uint8_t* key = suite == 0x1301 ? info.aes128.key : info.aes256.key;
    const uint8_t* salt = suite == 0x1301 ? info.aes128.salt : info.aes256.salt;
    const uint8_t* iv = suite == 0x1301 ? info.aes128.iv : info.aes256.iv;
    const uint8_t* seq = suite == 0x1301 ? info.aes128.rec_seq : info.aes256.rec_seq;
    uint8_t nonce[12];
    std::memcpy(nonce, salt, 4);
    std::memcpy(nonce + 4, iv, 8);
    for (int i = 0; i < 8; ++i) {
      nonce[4 + i] ^= seq[i];
    }
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    const EVP_CIPHER* cipher = suite == 0x1301 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
    std::string out(record.size(), '\0');
    int len = 0;
    int total = 0;
    const auto* rec = reinterpret_cast<const uint8_t*>(record.data());
    size_t bodyLen = record.size() - 5 - 16;
    bool good = EVP_DecryptInit_ex(ctx, cipher, nullptr, key, nonce) == 1 &&
                EVP_DecryptUpdate(ctx, nullptr, &len, rec, 5) == 1 &&  // AAD = header
                EVP_DecryptUpdate(ctx, reinterpret_cast<uint8_t*>(out.data()), &len, rec + 5,
                                  static_cast<int>(bodyLen)) == 1;
    total = len;
    good = good && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                                       const_cast<uint8_t*>(rec + 5 + bodyLen)) == 1;
    good =
        good && EVP_DecryptFinal_ex(ctx, reinterpret_cast<uint8_t*>(out.data()) + total, &len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!good) {
      return "<decrypt failed>";
    }
    out.resize(static_cast<size_t>(total + len));
    return out;
  }
};

TEST_F(KtlsSessionTest, TrafficStateDecryptsTheNextRecord) {
  testing::TlsPair p = makePair(capture_);
  ASSERT_TRUE(p.handshake().succeeded());
  // Some traffic first, so the sequence numbers are not zero: 3 records up, 5 records down.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(p.clientWrite("up" + std::to_string(i)));
  }
  ASSERT_TRUE(p.serverWrite(std::string(4 * 16384 + 1, 'x')));  // 5 records
  ASSERT_TRUE(p.pump());

  auto cs = p.client().trafficState();
  auto ss = p.server().trafficState();
  ASSERT_TRUE(cs) << cs.error().message();
  ASSERT_TRUE(ss) << ss.error().message();
  EXPECT_EQ(cs->cipherSuite, 0x1302);
  EXPECT_EQ(cs->txSeq, 3u);
  EXPECT_EQ(cs->rxSeq, 5u);
  EXPECT_EQ(ss->txSeq, 5u);
  EXPECT_EQ(ss->rxSeq, 3u);
  EXPECT_EQ(tohex(cs->txSecret), tohex(ss->rxSecret));
  EXPECT_EQ(tohex(cs->rxSecret), tohex(ss->txSecret));
  EXPECT_EQ(cs->txSecret.size(), 48u);  // SHA-384

  // The client's next record, opened with the TX crypto info the kernel would get.
  KernelTlsCryptoInfo tx;
  ASSERT_TRUE(makeKernelTlsCryptoInfo(cs->cipherSuite, cs->txSecret, cs->txSeq, tx));
  ByteBuffer wire;
  ASSERT_TRUE(p.client().write(std::span(reinterpret_cast<const uint8_t*>("kernel"), 6), wire));
  EXPECT_EQ(openRecord(tx, cs->cipherSuite, wire.toString()), std::string("kernel\x17", 7));
  // ... and the server's RX info for the same record is identical.
  KernelTlsCryptoInfo rx;
  ASSERT_TRUE(makeKernelTlsCryptoInfo(ss->cipherSuite, ss->rxSecret, ss->rxSeq, rx));
  EXPECT_EQ(std::memcmp(&rx.aes256, &tx.aes256, sizeof(tx.aes256)), 0);
}

TEST_F(KtlsSessionTest, TrafficStateRequiresCaptureAndTls13) {
  testing::TlsPair plain = makePair({});
  ASSERT_TRUE(plain.handshake().succeeded());
  auto st = plain.client().trafficState();
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().is(TlsErrc::kKernelTls));
  testing::TlsPair fresh = makePair(capture_);
  EXPECT_FALSE(fresh.client().trafficState());  // not established
}

TEST_F(KtlsSessionTest, EnableReportsTheKernelsAnswer) {
  testing::TlsPair p = makePair(capture_);
  ASSERT_TRUE(p.handshake().succeeded());
  // Not a socket at all.
  auto bad = enableKernelTls(-1, p.client());
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(TlsErrc::kKernelTls));
  EXPECT_EQ(bad.error().sysErrno(), EBADF);
  if (probeKernelTls().available) {
    GTEST_SKIP() << "kernel TLS available here; the real hand-off needs a live TLS peer on the "
                    "socket and is exercised by integration tests";
  }
}

}  // namespace
}  // namespace zt::tls
