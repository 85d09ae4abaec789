#include "ztunnel/identity/file_certs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/test_pki.h"
#include "tests/support/temp_dir.h"

namespace zt::identity {
namespace {

namespace fs = std::filesystem;
using zt::testing::TestPki;

// A fresh directory under the system temp dir, removed (recursively) at the end of the test.
// A temp dir named after this test file.
class TempDir : public zt::testing::TempDir {
 public:
  TempDir() : zt::testing::TempDir("zt-file-certs") {}
};

void writeText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ASSERT_TRUE(out) << path;
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

void writeBundle(const tls::CertificateBundle& bundle, const fs::path& dir) {
  auto st = tls::writeBundleFiles(bundle, dir);
  ASSERT_TRUE(st) << st.error().message();
}

// Serial of a bundle as Credentials reports it.
std::string serialOf(const tls::CertificateBundle& bundle) {
  auto creds = tls::Credentials::fromPem(bundle);
  EXPECT_TRUE(creds) << creds.error().message();
  return creds ? (*creds)->serialHex() : std::string();
}

class FileCertsTest : public ::testing::Test {
 protected:
  // One PKI for the whole suite: minting keys is the slow part.
  static void SetUpTestSuite() { pki_ = new TestPki("example.org"); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  // A watcher on `dir` that records the serial of every credential set it publishes.
  CertDirWatcher watcher(const fs::path& dir, std::optional<tls::Identity> expected = {}) {
    return CertDirWatcher(dir, tls::TlsOptions{}, std::move(expected),
                          [this](std::shared_ptr<const WorkloadTls> tls) {
                            ASSERT_NE(tls, nullptr);
                            ASSERT_NE(tls->credentials, nullptr);
                            published_.push_back(tls->credentials->serialHex());
                            current_ = std::move(tls);
                          });
  }

  static TestPki* pki_;
  TempDir tmp_;
  std::vector<std::string> published_;
  std::shared_ptr<const WorkloadTls> current_;
};

TestPki* FileCertsTest::pki_ = nullptr;

// ---------------------------------------------------------------------------------------------
// readCertDir

TEST_F(FileCertsTest, ReadCertDirNamesTheMissingFile) {
  const auto bundle = pki_->bundle("ns1", "sa1");
  const fs::path dir = tmp_.path();

  auto none = readCertDir(dir);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(IdentityErrc::kCertDir));
  EXPECT_NE(none.error().message().find("cert-chain.pem"), std::string::npos)
      << none.error().message();
  EXPECT_EQ(none.error().sysErrno(), ENOENT);

  writeText(dir / kCertChainFile, bundle.certChainPem);
  auto noKey = readCertDir(dir);
  ASSERT_FALSE(noKey);
  EXPECT_TRUE(noKey.error().is(IdentityErrc::kCertDir));
  EXPECT_NE(noKey.error().message().find("key.pem"), std::string::npos) << noKey.error().message();

  writeText(dir / kKeyFile, bundle.privateKeyPem);
  auto noRoot = readCertDir(dir);
  ASSERT_FALSE(noRoot);
  EXPECT_TRUE(noRoot.error().is(IdentityErrc::kCertDir));
  EXPECT_NE(noRoot.error().message().find("root-cert.pem"), std::string::npos)
      << noRoot.error().message();

  writeText(dir / kRootCertFile, bundle.rootCertsPem);
  auto all = readCertDir(dir);
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(*all, bundle);

  auto missingDir = readCertDir(dir / "does-not-exist");
  ASSERT_FALSE(missingDir);
  EXPECT_NE(missingDir.error().message().find("does-not-exist/cert-chain.pem"), std::string::npos)
      << missingDir.error().message();
}

// ---------------------------------------------------------------------------------------------
// CertDirWatcher::load

TEST_F(FileCertsTest, LoadGivesContextsForTheIdentity) {
  const auto bundle = pki_->bundle("ns1", "sa1");
  writeBundle(bundle, tmp_.path());

  auto w = watcher(tmp_.path(), pki_->identity("ns1", "sa1"));
  EXPECT_EQ(w.dir(), tmp_.path());
  auto loaded = w.load();
  ASSERT_TRUE(loaded) << loaded.error().message();
  ASSERT_NE(*loaded, nullptr);
  ASSERT_NE((*loaded)->credentials, nullptr);
  EXPECT_EQ((*loaded)->credentials->identity().toUri(), "spiffe://example.org/ns/ns1/sa/sa1");
  EXPECT_EQ((*loaded)->credentials->serialHex(), serialOf(bundle));
  EXPECT_NE((*loaded)->client, nullptr);
  EXPECT_NE((*loaded)->server, nullptr);
  EXPECT_TRUE(published_.empty());  // load() returns; it does not publish

  // No expectation: any identity loads.
  auto any = watcher(tmp_.path()).load();
  ASSERT_TRUE(any) << any.error().message();
}

TEST_F(FileCertsTest, LoadRefusesAnotherIdentity) {
  writeBundle(pki_->bundle("ns1", "sa1"), tmp_.path());
  auto loaded = watcher(tmp_.path(), pki_->identity("ns1", "other")).load();
  ASSERT_FALSE(loaded);
  EXPECT_TRUE(loaded.error().is(IdentityErrc::kWrongIdentity)) << loaded.error().message();
  EXPECT_NE(loaded.error().message().find("spiffe://example.org/ns/ns1/sa/sa1"), std::string::npos)
      << loaded.error().message();
  EXPECT_NE(loaded.error().message().find("spiffe://example.org/ns/ns1/sa/other"),
            std::string::npos)
      << loaded.error().message();

  // Same names, other trust domain: also another identity.
  auto otherTd = watcher(tmp_.path(), tls::Identity::make("cluster.local", "ns1", "sa1")).load();
  ASSERT_FALSE(otherTd);
  EXPECT_TRUE(otherTd.error().is(IdentityErrc::kWrongIdentity));
}

TEST_F(FileCertsTest, LoadErrors) {
  // Missing files: kCertDir naming the file.
  auto empty = watcher(tmp_.path()).load();
  ASSERT_FALSE(empty);
  EXPECT_TRUE(empty.error().is(IdentityErrc::kCertDir));
  EXPECT_NE(empty.error().message().find("cert-chain.pem"), std::string::npos);

  // A key from another certificate: refused, naming the directory.
  auto a = pki_->bundle("ns1", "sa1");
  auto b = pki_->bundle("ns1", "sa1");
  writeBundle({a.certChainPem, b.privateKeyPem, a.rootCertsPem}, tmp_.path());
  auto mismatch = watcher(tmp_.path()).load();
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message().find(tmp_.path().string()), std::string::npos)
      << mismatch.error().message();
}

// ---------------------------------------------------------------------------------------------
// CertDirWatcher::poll

TEST_F(FileCertsTest, PollPublishesChangesAndKeepsCredentialsOnBrokenWrites) {
  const auto first = pki_->bundle("ns1", "sa1");
  writeBundle(first, tmp_.path());
  auto w = watcher(tmp_.path(), pki_->identity("ns1", "sa1"));
  auto loaded = w.load();
  ASSERT_TRUE(loaded) << loaded.error().message();

  // Nothing changed.
  EXPECT_FALSE(w.poll());
  EXPECT_FALSE(w.poll());
  EXPECT_TRUE(published_.empty());

  // A new certificate.
  const auto second = pki_->bundle("ns1", "sa1");
  writeBundle(second, tmp_.path());
  EXPECT_TRUE(w.poll());
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_.back(), serialOf(second));
  EXPECT_NE(published_.back(), serialOf(first));
  EXPECT_FALSE(w.poll());  // seen
  EXPECT_EQ(published_.size(), 1u);

  // A broken write: the chain of a third certificate with the key of a fourth.
  const auto third = pki_->bundle("ns1", "sa1");
  const auto fourth = pki_->bundle("ns1", "sa1");
  writeBundle({third.certChainPem, fourth.privateKeyPem, third.rootCertsPem}, tmp_.path());
  EXPECT_FALSE(w.poll());
  EXPECT_FALSE(w.poll());  // the same broken files are not retried
  EXPECT_EQ(published_.size(), 1u);
  ASSERT_NE(current_, nullptr);
  EXPECT_EQ(current_->credentials->serialHex(), serialOf(second));

  // Another broken state (an unparseable chain) is a new change: tried, refused again.
  writeText(tmp_.path() / kCertChainFile, "-----BEGIN CERTIFICATE-----\nnot base64\n");
  EXPECT_FALSE(w.poll());
  EXPECT_EQ(published_.size(), 1u);

  // A certificate for another identity is refused the same way.
  writeBundle(pki_->bundle("ns1", "intruder"), tmp_.path());
  EXPECT_FALSE(w.poll());
  EXPECT_EQ(published_.size(), 1u);

  // Fixed.
  writeBundle(third, tmp_.path());
  EXPECT_TRUE(w.poll());
  ASSERT_EQ(published_.size(), 2u);
  EXPECT_EQ(published_.back(), serialOf(third));
  EXPECT_EQ(current_->credentials->serialHex(), serialOf(third));
  EXPECT_FALSE(w.poll());
}

TEST_F(FileCertsTest, PollSeesADeletedThenRestoredFile) {
  const auto first = pki_->bundle("ns1", "sa1");
  writeBundle(first, tmp_.path());
  auto w = watcher(tmp_.path());
  ASSERT_TRUE(w.load());

  fs::remove(tmp_.path() / kKeyFile);
  EXPECT_FALSE(w.poll());  // unreadable: keep the current credentials
  EXPECT_TRUE(published_.empty());

  const auto second = pki_->bundle("ns1", "sa1");
  writeBundle(second, tmp_.path());
  EXPECT_TRUE(w.poll());
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_.back(), serialOf(second));
}

// Kubernetes' AtomicWriter layout: the visible names are symlinks through `..data`, which is a
// symlink to a timestamped directory; an update writes a new directory and swaps `..data`.
TEST_F(FileCertsTest, PollSeesADataSymlinkSwap) {
  const fs::path dir = tmp_.path();
  const auto first = pki_->bundle("ns1", "sa1");
  fs::create_directory(dir / "..2024_01_01_00_00_00.1");
  writeBundle(first, dir / "..2024_01_01_00_00_00.1");
  fs::create_directory_symlink("..2024_01_01_00_00_00.1", dir / "..data");
  for (const char* name : {kCertChainFile, kKeyFile, kRootCertFile}) {
    fs::create_symlink(fs::path("..data") / name, dir / name);
  }

  auto w = watcher(dir, pki_->identity("ns1", "sa1"));
  auto loaded = w.load();
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ((*loaded)->credentials->serialHex(), serialOf(first));
  EXPECT_FALSE(w.poll());

  const auto second = pki_->bundle("ns1", "sa1");
  fs::create_directory(dir / "..2024_01_01_01_00_00.2");
  writeBundle(second, dir / "..2024_01_01_01_00_00.2");
  fs::create_directory_symlink("..2024_01_01_01_00_00.2", dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");  // atomic swap
  fs::remove_all(dir / "..2024_01_01_00_00_00.1");

  EXPECT_TRUE(w.poll());
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_.back(), serialOf(second));
  EXPECT_FALSE(w.poll());
}

// Each plain file replaced by a symlink to files written elsewhere.
TEST_F(FileCertsTest, PollSeesFilesReplacedBySymlinks) {
  const fs::path dir = tmp_.path() / "certs";
  const fs::path elsewhere = tmp_.path() / "elsewhere";
  fs::create_directories(dir);
  fs::create_directories(elsewhere);
  writeBundle(pki_->bundle("ns1", "sa1"), dir);
  auto w = watcher(dir);
  ASSERT_TRUE(w.load());
  EXPECT_FALSE(w.poll());

  const auto second = pki_->bundle("ns1", "sa1");
  writeBundle(second, elsewhere);
  for (const char* name : {kKeyFile, kCertChainFile, kRootCertFile}) {
    fs::create_symlink(elsewhere / name, dir / (std::string(name) + ".lnk"));
    fs::rename(dir / (std::string(name) + ".lnk"), dir / name);
  }
  EXPECT_TRUE(w.poll());
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_.back(), serialOf(second));
  EXPECT_FALSE(w.poll());
}

}  // namespace
}  // namespace zt::identity
