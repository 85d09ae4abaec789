// TLS micro-benchmarks (tls/ module), all in memory on one thread.
//
//   BM_Tls_Seal/<bits>    TlsSession::write of one 16 KiB plaintext block -> one full record.
//   BM_Tls_Open/<bits>    TlsSession::feed of one full 16 KiB record -> plaintext.
//   BM_Tls_EvpAesGcm/<bits>  baseline: raw EVP AES-GCM over 16 KiB per call (IV set, AAD, tag),
//                         what a TLS record costs the cipher alone; compare with
//                         `openssl speed -evp aes-<bits>-gcm -bytes 16384` from the same run.
//   BM_Tls_Handshake      full mutual-TLS 1.3 handshake (both ends, P-256 ECDSA certs, ECDHE
//   P-256).
//
// <bits> = 256: our client <-> our server (the profile's preferred TLS_AES_256_GCM_SHA384);
// <bits> = 128: a plain OpenSSL client offering only TLS_AES_128_GCM_SHA256 <-> our server.
// Seal and Open always measure our server-side TlsSession.
//
// Run: build-rel/bench/zt_bench --benchmark_filter=BM_Tls_

#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/raw_tls_peer.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_pump.h"
#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/tls/tls_session.h"

namespace {

using zt::ByteBuffer;
using zt::tls::TlsSession;

constexpr size_t kRecord = TlsSession::kMaxRecordPlaintext;

const zt::testing::TestPki& pki() {
  static const zt::testing::TestPki instance("cluster.local");
  return instance;
}

// An established server session plus a peer that can produce records for it.
class Established {
 public:
  explicit Established(int bits) {
    auto sctx = pki().serverContext("bench", "server");
    auto server = TlsSession::server(sctx);
    if (!server) {
      throw std::runtime_error(server.error().message());
    }
    server_ = std::move(*server);
    if (bits == 256) {
      auto client = TlsSession::client(pki().clientContext("bench", "client"),
                                       {pki().identity("bench", "server")});
      if (!client) {
        throw std::runtime_error(client.error().message());
      }
      client_ = std::move(*client);
      if (!zt::testing::pumpHandshake(*client_, *server_).succeeded()) {
        throw std::runtime_error("handshake failed");
      }
    } else {
      zt::testing::RawPeerConfig cfg;
      cfg.alpn = {"h2"};
      cfg.tls13Suites = "TLS_AES_128_GCM_SHA256";
      cfg.credentials = pki().bundle("bench", "client");
      raw_ = std::make_unique<zt::testing::RawTlsPeer>(cfg);
      auto out = zt::testing::pumpRaw(*server_, *raw_);
      if (!out.ours || !server_->established()) {
        throw std::runtime_error("raw handshake failed");
      }
    }
    if (server_->cipherSuiteId() != (bits == 256 ? 0x1302 : 0x1301)) {
      throw std::runtime_error("unexpected cipher suite");
    }
  }

  TlsSession& server() { return *server_; }

  // `count` full records of ciphertext from the peer, concatenated.
  std::string peerRecords(const std::string& plaintext, size_t count) {
    ByteBuffer wire;
    for (size_t i = 0; i < count; ++i) {
      if (client_) {
        if (!client_->write(
                std::span(reinterpret_cast<const uint8_t*>(plaintext.data()), plaintext.size()),
                wire)) {
          throw std::runtime_error("client write");
        }
      } else {
        raw_->write(plaintext);
        wire.moveFrom(raw_->out());
      }
    }
    return wire.toString();
  }

 private:
  std::unique_ptr<TlsSession> server_;
  std::unique_ptr<TlsSession> client_;
  std::unique_ptr<zt::testing::RawTlsPeer> raw_;
};

void BM_Tls_Seal(benchmark::State& state) {
  Established est(static_cast<int>(state.range(0)));
  std::vector<uint8_t> plaintext(kRecord, 0x5a);
  ByteBuffer out;
  for (auto _ : state) {
    if (!est.server().write(plaintext, out)) {
      state.SkipWithError("write failed");
      break;
    }
    benchmark::DoNotOptimize(out.size());
    out.clear();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRecord);
}
BENCHMARK(BM_Tls_Seal)->Arg(256)->Arg(128);

// Same through write(ByteBuffer&) from a full 16 KiB block (the proxy's path).
void BM_Tls_SealBuffer(benchmark::State& state) {
  Established est(static_cast<int>(state.range(0)));
  std::string block(kRecord, 'z');
  ByteBuffer plain;
  ByteBuffer out;
  for (auto _ : state) {
    plain.append(block);
    if (!est.server().write(plain, out)) {
      state.SkipWithError("write failed");
      break;
    }
    benchmark::DoNotOptimize(out.size());
    out.clear();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRecord);
}
BENCHMARK(BM_Tls_SealBuffer)->Arg(256);

void BM_Tls_Open(benchmark::State& state) {
  Established est(static_cast<int>(state.range(0)));
  const std::string plaintext(kRecord, 'p');
  // Small batches keep the ciphertext cache-warm like openssl speed's buffer (32 x 16 KiB).
  constexpr size_t kBatch = 32;
  constexpr size_t kWire = kRecord + TlsSession::kTls13RecordOverhead;
  std::string wire;
  size_t next = kBatch;
  ByteBuffer plain;
  ByteBuffer out;
  for (auto _ : state) {
    if (next == kBatch) {
      state.PauseTiming();
      wire = est.peerRecords(plaintext, kBatch);
      if (wire.size() != kBatch * kWire) {
        state.SkipWithError("unexpected record size");
        break;
      }
      next = 0;
      state.ResumeTiming();
    }
    auto r = est.server().feed(
        std::span(reinterpret_cast<const uint8_t*>(wire.data()) + next * kWire, kWire), plain, out);
    if (!r || plain.size() != kRecord) {
      state.SkipWithError("feed failed");
      break;
    }
    ++next;
    plain.clear();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRecord);
}
BENCHMARK(BM_Tls_Open)->Arg(256)->Arg(128);

// Seal on the peer + open on our server per iteration, no timer pauses (cross-check of Open).
void BM_Tls_SealOpen(benchmark::State& state) {
  Established est(256);
  const std::string plaintext(kRecord, 'p');
  ByteBuffer plain;
  ByteBuffer out;
  for (auto _ : state) {
    std::string wire = est.peerRecords(plaintext, 1);
    auto r = est.server().feed(
        std::span(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()), plain, out);
    if (!r || plain.size() != kRecord) {
      state.SkipWithError("feed failed");
      break;
    }
    plain.clear();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRecord);
}
BENCHMARK(BM_Tls_SealOpen);

// Baseline: the AEAD alone, per 16 KiB record (new nonce, 5-byte AAD, tag), in place.
// Second argument: 0 = seal (encrypt + tag), 1 = open (decrypt + tag check).
void BM_Tls_EvpAesGcm(benchmark::State& state) {
  const bool aes256 = state.range(0) == 256;
  const bool open = state.range(1) == 1;
  const EVP_CIPHER* cipher = aes256 ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
  uint8_t key[32] = {1};
  uint8_t iv[12] = {2};
  uint8_t aad[5] = {0x17, 0x03, 0x03, 0x40, 0x11};
  uint8_t tag[16];
  std::vector<uint8_t> buf(kRecord, 0x33);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  // For "open", produce one valid record to decrypt over and over (same nonce each time).
  EVP_EncryptInit_ex(ctx, cipher, nullptr, key, iv);
  int len = 0;
  EVP_EncryptUpdate(ctx, nullptr, &len, aad, sizeof(aad));
  EVP_EncryptUpdate(ctx, buf.data(), &len, buf.data(), static_cast<int>(buf.size()));
  EVP_EncryptFinal_ex(ctx, buf.data() + len, &len);
  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
  const std::vector<uint8_t> sealed = buf;
  if (open) {
    EVP_DecryptInit_ex(ctx, cipher, nullptr, key, nullptr);
  }
  uint64_t seq = 0;
  for (auto _ : state) {
    if (open) {
      EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, iv);
      EVP_DecryptUpdate(ctx, nullptr, &len, aad, sizeof(aad));
      EVP_DecryptUpdate(ctx, buf.data(), &len, sealed.data(), static_cast<int>(sealed.size()));
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag);
      if (EVP_DecryptFinal_ex(ctx, buf.data() + len, &len) != 1) {
        state.SkipWithError("tag mismatch");
        break;
      }
    } else {
      ++seq;
      std::memcpy(iv + 4, &seq, sizeof(seq));
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv);
      EVP_EncryptUpdate(ctx, nullptr, &len, aad, sizeof(aad));
      EVP_EncryptUpdate(ctx, buf.data(), &len, buf.data(), static_cast<int>(buf.size()));
      EVP_EncryptFinal_ex(ctx, buf.data() + len, &len);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
    }
    benchmark::DoNotOptimize(buf.data());
    benchmark::DoNotOptimize(tag);
  }
  EVP_CIPHER_CTX_free(ctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRecord);
}
BENCHMARK(BM_Tls_EvpAesGcm)->Args({256, 0})->Args({256, 1})->Args({128, 0})->Args({128, 1});

void BM_Tls_Handshake(benchmark::State& state) {
  auto cctx = pki().clientContext("bench", "client");
  auto sctx = pki().serverContext("bench", "server");
  std::vector<zt::tls::Identity> expected{pki().identity("bench", "server")};
  for (auto _ : state) {
    auto client = TlsSession::client(cctx, expected);
    auto server = TlsSession::server(sctx);
    if (!client || !server || !zt::testing::pumpHandshake(**client, **server).succeeded()) {
      state.SkipWithError("handshake failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_Tls_Handshake);

}  // namespace
