#include "ztunnel/tls/certificate.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>

#include "tests/support/test_pki.h"
#include "ztunnel/tls/cert_builder.h"

namespace zt::tls {
namespace {

using testing::TestPki;
using Clock = std::chrono::system_clock;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Owned = std::unique_ptr<X509, X509Free>;

X509Owned parsePem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Owned(x);
}

int countPemBlocks(const std::string& pem) {
  int n = 0;
  for (size_t pos = 0; (pos = pem.find("-----BEGIN CERTIFICATE-----", pos)) != std::string::npos;
       ++pos) {
    ++n;
  }
  return n;
}

bool extensionCritical(X509* x, int nid) {
  int idx = X509_get_ext_by_NID(x, nid, -1);
  return idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, idx)) == 1;
}

TEST(CredentialsTest, LoadsWorkloadBundle) {
  TestPki pki;
  CertificateBundle bundle = pki.bundle("default", "productpage");
  auto creds = Credentials::fromPem(bundle);
  ASSERT_TRUE(creds) << creds.error().message();
  const Credentials& c = **creds;
  EXPECT_EQ(c.identity(), Identity::make("cluster.local", "default", "productpage"));
  EXPECT_EQ(c.serialHex().size(), 32u);
  EXPECT_LT(c.notBefore(), Clock::now());
  EXPECT_GT(c.notAfter(), Clock::now() + std::chrono::hours(23));
  EXPECT_EQ(c.rootCount(), 1u);
  EXPECT_EQ(sk_X509_num(c.intermediates()), 0);
  EXPECT_EQ(c.bundle(), bundle);
  EXPECT_TRUE(c.verifyOwnChain(Clock::now()));
  auto later = c.verifyOwnChain(Clock::now() + std::chrono::hours(48));
  ASSERT_FALSE(later);
  EXPECT_NE(later.error().message().find("expired"), std::string::npos) << later.error().message();
}

TEST(CredentialsTest, LoadsIntermediateChainAndSeveralRoots) {
  TestPki pki(TestPki::Options{.trustDomain = "example.org", .useIntermediate = true});
  TestPki other("other.org");
  pki.addTrustedRoot(other.root().certPem);
  CertificateBundle bundle = pki.bundle("ns", "sa");
  EXPECT_EQ(countPemBlocks(bundle.certChainPem), 2);
  auto creds = Credentials::fromPem(bundle);
  ASSERT_TRUE(creds) << creds.error().message();
  EXPECT_EQ((*creds)->rootCount(), 2u);
  EXPECT_EQ(sk_X509_num((*creds)->intermediates()), 1);
  EXPECT_EQ((*creds)->identity().trustDomain, "example.org");
  EXPECT_TRUE((*creds)->verifyOwnChain(Clock::now()));
}

TEST(CredentialsTest, RejectsMismatchedKey) {
  TestPki pki;
  CertificateBundle a = pki.bundle("ns", "a");
  CertificateBundle b = pki.bundle("ns", "b");
  a.privateKeyPem = b.privateKeyPem;
  auto creds = Credentials::fromPem(a);
  ASSERT_FALSE(creds);
  EXPECT_TRUE(creds.error().is(TlsErrc::kInvalidCredentials));
  EXPECT_NE(creds.error().message().find("does not match"), std::string::npos);
}

TEST(CredentialsTest, RequiresExactlyOneSpiffeUriSan) {
  TestPki pki;
  WorkloadCertOptions dnsOnly;
  dnsOnly.dnsSans = {"productpage.default.svc.cluster.local"};
  WorkloadCertOptions two = pki.options("ns", "a");
  two.uriSans.push_back(pki.identity("ns", "b").toUri());
  WorkloadCertOptions notSpiffe;
  notSpiffe.uriSans = {"https://example.com/ns/a/sa/b"};
  WorkloadCertOptions none;
  none.commonName = "no-san";
  for (const auto& [name, options, expect] :
       {std::tuple{"dns only", dnsOnly, "no URI SAN"}, std::tuple{"two", two, "2 URI SANs"},
        std::tuple{"not spiffe", notSpiffe, "not a SPIFFE id"},
        std::tuple{"no SAN", none, "no subjectAltName"}}) {
    auto creds = Credentials::fromPem(pki.bundle(options));
    ASSERT_FALSE(creds) << name;
    EXPECT_TRUE(creds.error().is(TlsErrc::kInvalidCredentials)) << name;
    EXPECT_NE(creds.error().message().find(expect), std::string::npos)
        << name << ": " << creds.error().message();
  }
}

TEST(CredentialsTest, RejectsBadPem) {
  TestPki pki;
  CertificateBundle good = pki.bundle("ns", "sa");
  auto expectFail = [](const CertificateBundle& b, const char* what) {
    auto creds = Credentials::fromPem(b);
    EXPECT_FALSE(creds) << what;
    if (!creds) {
      EXPECT_TRUE(creds.error().is(TlsErrc::kInvalidCredentials)) << what;
    }
  };
  CertificateBundle b = good;
  b.certChainPem = "garbage";
  expectFail(b, "garbage chain");
  b = good;
  b.certChainPem.clear();
  expectFail(b, "empty chain");
  b = good;
  b.rootCertsPem.clear();
  expectFail(b, "empty roots");
  b = good;
  b.privateKeyPem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  expectFail(b, "bad key");
  b = good;
  // Damage the base64 body of the certificate.
  size_t mid = b.certChainPem.find('\n') + 10;
  b.certChainPem[mid] = b.certChainPem[mid] == 'A' ? 'B' : 'A';
  b.certChainPem[mid + 1] = '*';
  expectFail(b, "damaged chain");
  b = good;
  b.certChainPem = good.certChainPem.substr(0, good.certChainPem.size() / 2);
  expectFail(b, "truncated chain");
  // And the error queue is left clean for whoever runs next on this thread.
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CertBuilderTest, RootProfile) {
  auto root = mintRoot("cluster.local", std::chrono::hours(24));
  ASSERT_TRUE(root) << root.error().message();
  X509Owned x = parsePem(root->certPem);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_check_ca(x.get()), 1);
  EXPECT_TRUE(extensionCritical(x.get(), NID_basic_constraints));
  EXPECT_TRUE(extensionCritical(x.get(), NID_key_usage));
  EXPECT_NE(X509_get_key_usage(x.get()) & KU_KEY_CERT_SIGN, 0u);
  EXPECT_NE(X509_get_key_usage(x.get()) & KU_CRL_SIGN, 0u);
  EXPECT_NE(X509_get0_subject_key_id(x.get()), nullptr);
  EXPECT_EQ(X509_self_signed(x.get(), 1), 1);
  EXPECT_EQ(X509_get_signature_nid(x.get()), NID_ecdsa_with_SHA256);
  EXPECT_NE(root->keyPem.find("BEGIN PRIVATE KEY"), std::string::npos);  // PKCS#8
}

TEST(CertBuilderTest, WorkloadProfileMatchesIstio) {
  TestPki pki;
  auto issued = issueWorkload(pki.root().certPem, pki.root().keyPem, pki.options("ns", "sa"));
  ASSERT_TRUE(issued) << issued.error().message();
  EXPECT_EQ(issued->chainPem, issued->certPem);  // issued by the root: chain is the leaf alone
  X509Owned x = parsePem(issued->certPem);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(x.get())), 0);  // empty subject
  EXPECT_TRUE(extensionCritical(x.get(), NID_subject_alt_name));
  EXPECT_TRUE(extensionCritical(x.get(), NID_basic_constraints));
  EXPECT_EQ(X509_check_ca(x.get()), 0);
  EXPECT_NE(X509_get_key_usage(x.get()) & KU_DIGITAL_SIGNATURE, 0u);
  EXPECT_NE(X509_get_extended_key_usage(x.get()) & XKU_SSL_SERVER, 0u);
  EXPECT_NE(X509_get_extended_key_usage(x.get()) & XKU_SSL_CLIENT, 0u);
  EXPECT_EQ(X509_get_signature_nid(x.get()), NID_ecdsa_with_SHA256);
  EVP_PKEY* pub = X509_get0_pubkey(x.get());
  ASSERT_NE(pub, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(pub, "EC"));
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof(group), &len), 1);
  EXPECT_STREQ(group, "prime256v1");
  // Random serials.
  auto again = issueWorkload(pki.root().certPem, pki.root().keyPem, pki.options("ns", "sa"));
  ASSERT_TRUE(again);
  X509Owned y = parsePem(again->certPem);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(x.get()), X509_get0_serialNumber(y.get())), 0);
}

TEST(CertBuilderTest, ValidityOptionsAreHonoured) {
  TestPki pki;
  WorkloadCertOptions o = pki.options("ns", "sa");
  auto nb = Clock::now() - std::chrono::hours(48);
  o.notBefore = nb;
  o.notAfter = nb + std::chrono::hours(1);
  auto creds = Credentials::fromPem(pki.bundle(o));
  ASSERT_TRUE(creds) << creds.error().message();  // expired certificates still load
  EXPECT_EQ(Clock::to_time_t((*creds)->notBefore()), Clock::to_time_t(nb));
  EXPECT_EQ(Clock::to_time_t((*creds)->notAfter()), Clock::to_time_t(nb + std::chrono::hours(1)));
  o.notAfter = nb - std::chrono::hours(1);
  EXPECT_FALSE(issueWorkload(pki.root().certPem, pki.root().keyPem, o));
}

TEST(CertBuilderTest, RejectsMismatchedCaKey) {
  TestPki a;
  TestPki b;
  auto issued = issueWorkload(a.root().certPem, b.root().keyPem, a.options("ns", "sa"));
  ASSERT_FALSE(issued);
  EXPECT_TRUE(issued.error().is(TlsErrc::kCertificateIssuance));
}

TEST(CertBuilderTest, CsrFollowsIstioFormatAndCanBeSigned) {
  TestPki pki;
  Identity id = pki.identity("bookinfo", "reviews");
  auto csr = generateCsr(id);
  ASSERT_TRUE(csr) << csr.error().message();
  auto sans = csrUriSans(csr->csrPem);
  ASSERT_TRUE(sans);
  EXPECT_EQ(*sans, std::vector<std::string>{id.toUri()});

  BIO* bio = BIO_new_mem_buf(csr->csrPem.data(), static_cast<int>(csr->csrPem.size()));
  X509_REQ* req = PEM_read_bio_X509_REQ(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
  EXPECT_EQ(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA256);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  ASSERT_EQ(sk_X509_EXTENSION_num(exts), 1);
  X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, 0);
  EXPECT_EQ(OBJ_obj2nid(X509_EXTENSION_get_object(ext)), NID_subject_alt_name);
  EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);

  auto signedCert = signCsr(pki.root().certPem, pki.root().keyPem, csr->csrPem);
  ASSERT_TRUE(signedCert) << signedCert.error().message();
  EXPECT_TRUE(signedCert->keyPem.empty());
  auto creds = Credentials::fromPem({signedCert->chainPem, csr->keyPem, pki.root().certPem});
  ASSERT_TRUE(creds) << creds.error().message();
  EXPECT_EQ((*creds)->identity(), id);

  // A damaged CSR is refused.
  std::string damaged = csr->csrPem;
  size_t pos = damaged.find('\n') + 40;
  damaged[pos] = damaged[pos] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(signCsr(pki.root().certPem, pki.root().keyPem, damaged));
}

TEST(CertBuilderTest, IntermediateChains) {
  TestPki pki;
  auto inter = issueIntermediate(pki.root().certPem, pki.root().keyPem);
  ASSERT_TRUE(inter) << inter.error().message();
  auto leaf = issueWorkload(inter->certPem, inter->keyPem, pki.options("ns", "sa"));
  ASSERT_TRUE(leaf);
  EXPECT_EQ(countPemBlocks(leaf->chainPem), 2);
  auto creds = Credentials::fromPem({leaf->chainPem, leaf->keyPem, pki.root().certPem});
  ASSERT_TRUE(creds);
  EXPECT_TRUE((*creds)->verifyOwnChain(Clock::now()));
  // Without the intermediate the chain does not verify.
  auto bare = Credentials::fromPem({leaf->certPem, leaf->keyPem, pki.root().certPem});
  ASSERT_TRUE(bare);
  EXPECT_FALSE((*bare)->verifyOwnChain(Clock::now()));
}

TEST(BundleFilesTest, WritesAtomicallyWithModesAndReadsBack) {
  TestPki pki;
  CertificateBundle bundle = pki.bundle("ns", "sa");
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("zt-tls-bundle-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(writeBundleFiles(bundle, dir));
  // Overwrite works too (rename over the existing files).
  ASSERT_TRUE(writeBundleFiles(bundle, dir));
  struct stat st {};
  ASSERT_EQ(::stat((dir / "key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "cert-chain.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  ASSERT_EQ(::stat((dir / "root-cert.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
  }
  EXPECT_EQ(files, 3);  // no temporary files left behind
  auto back = readBundleFiles(dir);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, bundle);
  std::filesystem::remove_all(dir);

  auto missing = readBundleFiles(dir);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(TlsErrc::kFileIo));
  EXPECT_EQ(missing.error().sysErrno(), ENOENT);
  EXPECT_FALSE(writeBundleFiles(bundle, dir));
}

}  // namespace
}  // namespace zt::tls
