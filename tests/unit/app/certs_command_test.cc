#include "ztunnel/app/certs_command.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ztunnel/identity/file_certs.h"
#include "ztunnel/tls/certificate.h"
#include "tests/support/temp_dir.h"

namespace zt::app {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A temp dir named after this test file.
class TempDir : public zt::testing::TempDir {
 public:
  TempDir() : zt::testing::TempDir("zt-certs-cmd") {}
};

// runCerts with stdout and stderr captured.
struct CmdResult {
  int code = -1;
  std::string out;
  std::string err;
};

CmdResult run(std::vector<std::string> args) {
  CmdResult r;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  r.code = runCerts(args);
  r.out = ::testing::internal::GetCapturedStdout();
  r.err = ::testing::internal::GetCapturedStderr();
  return r;
}

std::string show(const CmdResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::string readText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class CertsCommandTest : public ::testing::Test {
 protected:
  std::string path(std::string_view name) const { return (tmp_.path() / name).string(); }

  // create-root into tmp/ca.
  void createRoot() {
    CmdResult r = run({"create-root", "--trust-domain", "example.org", "--out", path("ca")});
    ASSERT_EQ(r.code, 0) << show(r);
  }

  TempDir tmp_;
};

TEST_F(CertsCommandTest, CreateRoot) {
  CmdResult r = run({"create-root", "--trust-domain", "example.org", "--out", path("ca")});
  ASSERT_EQ(r.code, 0) << show(r);
  EXPECT_NE(r.out.find("example.org"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
  ASSERT_TRUE(fs::is_regular_file(path("ca/root-cert.pem")));
  ASSERT_TRUE(fs::is_regular_file(path("ca/root-key.pem")));
  EXPECT_EQ(modeOf(path("ca/root-key.pem")), 0600u);
  EXPECT_EQ(modeOf(path("ca/root-cert.pem")), 0644u);
  EXPECT_NE(readText(path("ca/root-cert.pem")).find("-----BEGIN CERTIFICATE-----"),
            std::string::npos);
  EXPECT_NE(readText(path("ca/root-key.pem")).find("PRIVATE KEY-----"), std::string::npos);
  // No temporary files left behind.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(path("ca"))) {
    ++files;
  }
  EXPECT_EQ(files, 2u);
}

TEST_F(CertsCommandTest, IssueLoadsAsTheWorkloadIdentity) {
  createRoot();
  CmdResult r = run({"issue", "--ca", path("ca"), "--namespace", "ns1", "--service-account", "sa1",
                     "--trust-domain", "example.org", "--out", path("w")});
  ASSERT_EQ(r.code, 0) << show(r);
  EXPECT_NE(r.out.find("spiffe://example.org/ns/ns1/sa/sa1"), std::string::npos) << r.out;

  for (const char* name : {"cert-chain.pem", "key.pem", "root-cert.pem"}) {
    EXPECT_TRUE(fs::is_regular_file(tmp_.path() / "w" / name)) << name;
  }
  EXPECT_EQ(modeOf(path("w/key.pem")), 0600u);
  EXPECT_EQ(modeOf(path("w/cert-chain.pem")), 0644u);
  EXPECT_EQ(readText(path("w/root-cert.pem")), readText(path("ca/root-cert.pem")));

  auto bundle = identity::readCertDir(path("w"));
  ASSERT_TRUE(bundle) << bundle.error().message();
  auto creds = tls::Credentials::fromPem(*bundle);
  ASSERT_TRUE(creds) << creds.error().message();
  EXPECT_EQ((*creds)->identity().toUri(), "spiffe://example.org/ns/ns1/sa/sa1");
  const auto now = std::chrono::system_clock::now();
  auto verified = (*creds)->verifyOwnChain(now);
  EXPECT_TRUE(verified) << verified.error().message();
  EXPECT_EQ((*creds)->rootCount(), 1u);
  // Default validity 24h.
  EXPECT_NEAR(std::chrono::duration<double>((*creds)->notAfter() - now).count(),
              std::chrono::duration<double>(24h).count(), 120.0);
  EXPECT_LE((*creds)->notBefore(), now);

  // Not verifiable against another root.
  CmdResult other = run({"create-root", "--trust-domain", "example.org", "--out", path("ca2")});
  ASSERT_EQ(other.code, 0) << show(other);
  auto foreign = tls::Credentials::fromPem(
      {bundle->certChainPem, bundle->privateKeyPem, readText(path("ca2/root-cert.pem"))});
  ASSERT_TRUE(foreign) << foreign.error().message();
  EXPECT_FALSE((*foreign)->verifyOwnChain(now));
}

TEST_F(CertsCommandTest, IssueDefaultsToClusterLocal) {
  CmdResult root = run({"create-root", "--trust-domain", "cluster.local", "--out", path("ca")});
  ASSERT_EQ(root.code, 0) << show(root);
  CmdResult r = run({"issue", "--ca", path("ca"), "--namespace", "default", "--service-account",
                     "bookinfo", "--out", path("w")});
  ASSERT_EQ(r.code, 0) << show(r);
  auto bundle = identity::readCertDir(path("w"));
  ASSERT_TRUE(bundle) << bundle.error().message();
  auto creds = tls::Credentials::fromPem(*bundle);
  ASSERT_TRUE(creds) << creds.error().message();
  EXPECT_EQ((*creds)->identity().toUri(), "spiffe://cluster.local/ns/default/sa/bookinfo");
}

TEST_F(CertsCommandTest, IssueValidity) {
  createRoot();
  const auto before = std::chrono::system_clock::now();
  CmdResult r = run({"issue", "--ca", path("ca"), "--namespace", "ns1", "--service-account", "sa1",
                     "--trust-domain", "example.org", "--out", path("w"), "--validity", "2h"});
  ASSERT_EQ(r.code, 0) << show(r);
  auto bundle = identity::readCertDir(path("w"));
  ASSERT_TRUE(bundle) << bundle.error().message();
  auto creds = tls::Credentials::fromPem(*bundle);
  ASSERT_TRUE(creds) << creds.error().message();
  EXPECT_NEAR(std::chrono::duration<double>((*creds)->notAfter() - before).count(),
              std::chrono::duration<double>(2h).count(), 120.0);
  EXPECT_TRUE((*creds)->verifyOwnChain(before + 1h));
  EXPECT_FALSE((*creds)->verifyOwnChain(before + 3h));  // expired by then
}

TEST_F(CertsCommandTest, IssueOverwritesAnExistingDirectory) {
  createRoot();
  std::vector<std::string> args = {
      "issue", "--ca",           path("ca"),    "--namespace", "ns1",    "--service-account",
      "sa1",   "--trust-domain", "example.org", "--out",       path("w")};
  CmdResult first = run(args);
  ASSERT_EQ(first.code, 0) << show(first);
  auto a = tls::Credentials::fromPem(*identity::readCertDir(path("w")));
  ASSERT_TRUE(a);
  CmdResult second = run(args);
  ASSERT_EQ(second.code, 0) << show(second);
  auto b = tls::Credentials::fromPem(*identity::readCertDir(path("w")));
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_NE((*a)->serialHex(), (*b)->serialHex());
  EXPECT_EQ(modeOf(path("w/key.pem")), 0600u);
}

TEST_F(CertsCommandTest, Show) {
  createRoot();
  CmdResult issued = run({"issue", "--ca", path("ca"), "--namespace", "ns1", "--service-account",
                          "sa1", "--trust-domain", "example.org", "--out", path("w")});
  ASSERT_EQ(issued.code, 0) << show(issued);
  auto creds = tls::Credentials::fromPem(*identity::readCertDir(path("w")));
  ASSERT_TRUE(creds);

  CmdResult r = run({"show", "--dir", path("w")});
  ASSERT_EQ(r.code, 0) << show(r);
  EXPECT_NE(r.out.find("identity: spiffe://example.org/ns/ns1/sa/sa1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("serial: " + (*creds)->serialHex()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("valid until: "), std::string::npos) << r.out;

  // A directory without certificates: a runtime failure naming the file.
  CmdResult missing = run({"show", "--dir", path("nothing-here")});
  EXPECT_EQ(missing.code, 1) << show(missing);
  EXPECT_NE(missing.err.find("cert-chain.pem"), std::string::npos) << missing.err;
}

TEST_F(CertsCommandTest, UsageErrorsExitTwo) {
  createRoot();
  const std::string ca = path("ca");
  const std::string out = path("out");
  const std::vector<std::vector<std::string>> cases = {
      {},                                                         // no action
      {"frobnicate"},                                             // unknown action
      {"create-root", "--out", out},                              // missing --trust-domain
      {"create-root", "--trust-domain", "example.org"},           // missing --out
      {"create-root", "--trust-domain", "example.org", "--out"},  // flag without value
      {"create-root", "--trust-domain", "example.org", "--out", out, "--bogus", "x"},
      {"create-root", "--trust-domain", "Not_A Domain", "--out", out},
      {"create-root", "--trust-domain", "example.org", "--out", out, "--validity", "soon"},
      {"create-root", "--trust-domain", "example.org", "--out", out, "--validity", "30s"},
      {"create-root", "--trust-domain", "", "--out", out},
      {"issue", "--ca", ca, "--service-account", "sa1", "--out", out},  // missing --namespace
      {"issue", "--ca", ca, "--namespace", "ns1", "--out", out},        // missing --service-account
      {"issue", "--namespace", "ns1", "--service-account", "sa1", "--out", out},  // missing --ca
      {"issue", "--ca", ca, "--namespace", "ns1", "--service-account", "sa1"},    // missing --out
      {"issue", "--ca", ca, "--namespace", "ns1", "--service-account", "sa1", "--out", out,
       "--unknown", "1"},
      {"issue", "--ca", ca, "--namespace", "ns1", "--service-account", "sa1", "--out", out,
       "--trust-domain", "Bad Domain"},
      {"issue", "--ca", ca, "--namespace", "ns/1", "--service-account", "sa1", "--out", out},
      {"issue", "--ca", ca, "--namespace", "ns1", "--service-account", "sa1", "--out", out,
       "--validity", "-1h"},
      {"issue", "--ca", ca, "--namespace", "ns1", "--service-account", "sa1", "--out", out,
       "positional"},
      {"show"},
      {"show", "--dir", path("w"), "--extra", "1"},
  };
  for (const auto& args : cases) {
    std::string joined;
    for (const auto& a : args) {
      joined += a + " ";
    }
    CmdResult r = run(args);
    EXPECT_EQ(r.code, 2) << joined << "\n" << show(r);
    if (!args.empty()) {
      EXPECT_NE(r.err.find("ztunnel certs: "), std::string::npos) << joined << "\n" << r.err;
      EXPECT_NE(r.err.find("Usage:"), std::string::npos) << joined << "\n" << r.err;
    }
    EXPECT_FALSE(fs::exists(out)) << joined << ": wrote output despite the usage error";
  }

  // The messages say what is wrong.
  EXPECT_NE(run({"create-root", "--out", out}).err.find("--trust-domain"), std::string::npos);
  EXPECT_NE(run({"frobnicate"}).err.find("frobnicate"), std::string::npos);
  EXPECT_NE(run({"issue", "--ca", ca, "--namespace", "ns1", "--service-account", "sa1", "--out",
                 out, "--validity", "soon"})
                .err.find("--validity"),
            std::string::npos);

  // help is not an error.
  CmdResult help = run({"help"});
  EXPECT_EQ(help.code, 0) << show(help);
  EXPECT_NE(help.out.find("create-root"), std::string::npos);
  EXPECT_EQ(run({"--help"}).code, 0);
}

TEST_F(CertsCommandTest, IssueWithoutCaFailsWithExitOne) {
  CmdResult r = run({"issue", "--ca", path("no-ca"), "--namespace", "ns1", "--service-account",
                     "sa1", "--out", path("w")});
  EXPECT_EQ(r.code, 1) << show(r);
  EXPECT_NE(r.err.find("root-cert.pem"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("create-root"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("w")));

  // A CA directory with the certificate but no key.
  createRoot();
  fs::remove(path("ca/root-key.pem"));
  CmdResult noKey = run({"issue", "--ca", path("ca"), "--namespace", "ns1", "--service-account",
                         "sa1", "--trust-domain", "example.org", "--out", path("w")});
  EXPECT_EQ(noKey.code, 1) << show(noKey);
  EXPECT_NE(noKey.err.find("root-key.pem"), std::string::npos) << noKey.err;
  EXPECT_FALSE(fs::exists(path("w")));
}

}  // namespace
}  // namespace zt::app
