#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "ztunnel/xds/local_config.h"

namespace zt::xds {
namespace {

namespace fs = std::filesystem;

std::string configWithIp(std::string_view ip) {
  return "workloads:\n- uid: w\n  name: w\n  namespace: ns\n  workloadIps: [\"" + std::string(ip) +
         "\"]\n";
}

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

// Editors' save: write a temp file next to the target, then rename it over.
void atomicReplace(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp~";
  writeFile(tmp, content);
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0);
}

class WatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zt-local-config-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/config.yaml";
  }
  void TearDown() override {
    watcher_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void makeWatcher() {
    auto w = LocalConfigWatcher::create(
        path_, state::StateOptions{},
        [this](std::shared_ptr<const state::ProxyState> s) { states_.push_back(std::move(s)); });
    ASSERT_TRUE(w) << w.error().message();
    watcher_ = std::move(*w);
  }

  // Pumps inotify events until `done` holds or ~5 s pass (a bounded wait, not a timing check).
  bool pumpUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      pollfd p{watcher_->fd(), POLLIN, 0};
      if (::poll(&p, 1, 50) > 0 && (p.revents & POLLIN)) {
        watcher_->handleEvents();
      }
    }
    return true;
  }
  // Pumps for a short while to let any (unexpected) event arrive.
  void pumpBriefly() {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{watcher_->fd(), POLLIN, 0};
      if (::poll(&p, 1, 20) > 0 && (p.revents & POLLIN)) {
        watcher_->handleEvents();
      }
    }
  }

  std::string lastIp() const {
    const auto& ws = states_.back()->workloads();
    return ws.empty() || ws[0].workloadIps.empty() ? "" : ws[0].workloadIps[0].toString();
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<LocalConfigWatcher> watcher_;
  std::vector<std::shared_ptr<const state::ProxyState>> states_;
};

TEST_F(WatcherTest, LoadNowThenInPlaceChange) {
  writeFile(path_, configWithIp("10.0.0.1"));
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());
  ASSERT_EQ(states_.size(), 1u);
  EXPECT_EQ(states_[0]->version(), 1u);
  EXPECT_EQ(lastIp(), "10.0.0.1");

  writeFile(path_, configWithIp("10.0.0.2"));
  ASSERT_TRUE(pumpUntil([&] { return states_.size() == 2; }));
  EXPECT_EQ(lastIp(), "10.0.0.2");
  EXPECT_EQ(states_[1]->version(), 2u);
  EXPECT_EQ(watcher_->loads(), 2u);
}

TEST_F(WatcherTest, BadFileKeepsLastGoodStateAndReportsError) {
  writeFile(path_, configWithIp("10.0.0.1"));
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());

  writeFile(path_, configWithIp("10.0.0.300"));
  ASSERT_TRUE(pumpUntil([&] { return watcher_->lastError().has_value(); }));
  EXPECT_EQ(states_.size(), 1u);  // no callback
  EXPECT_EQ(watcher_->lastError()->detail(),
            path_ + ":5:17: workloads[0].workloadIps[0]: \"10.0.0.300\" is not an IP address");

  // Fixing the file publishes again and clears the error.
  writeFile(path_, configWithIp("10.0.0.3"));
  ASSERT_TRUE(pumpUntil([&] { return states_.size() == 2; }));
  EXPECT_EQ(lastIp(), "10.0.0.3");
  EXPECT_FALSE(watcher_->lastError().has_value());
  EXPECT_EQ(states_.back()->version(), 2u);
}

TEST_F(WatcherTest, SyntaxErrorDoesNotPublish) {
  writeFile(path_, configWithIp("10.0.0.1"));
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());
  writeFile(path_, "workloads: [\n");
  ASSERT_TRUE(pumpUntil([&] { return watcher_->lastError().has_value(); }));
  EXPECT_NE(watcher_->lastError()->detail().find("YAML syntax error"), std::string::npos);
  EXPECT_EQ(states_.size(), 1u);
}

TEST_F(WatcherTest, AtomicRenameReplace) {
  writeFile(path_, configWithIp("10.0.0.1"));
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());
  atomicReplace(path_, configWithIp("10.0.0.4"));
  ASSERT_TRUE(pumpUntil([&] { return states_.size() == 2; }));
  EXPECT_EQ(lastIp(), "10.0.0.4");
  // And again (the watch survives the inode change).
  atomicReplace(path_, configWithIp("10.0.0.5"));
  ASSERT_TRUE(pumpUntil([&] { return states_.size() == 3; }));
  EXPECT_EQ(lastIp(), "10.0.0.5");
}

TEST_F(WatcherTest, ConfigMapSymlinkSwap) {
  // Kubernetes ConfigMap volume layout: config.yaml -> ..data/config.yaml, ..data -> ..<stamp>.
  fs::create_directory(dir_ + "/..v1");
  writeFile(dir_ + "/..v1/config.yaml", configWithIp("10.0.1.1"));
  fs::create_directory_symlink("..v1", dir_ + "/..data");
  fs::create_symlink("..data/config.yaml", path_);
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());
  EXPECT_EQ(lastIp(), "10.0.1.1");

  // The kubelet's update: new timestamped dir, new symlink, atomic rename over ..data.
  fs::create_directory(dir_ + "/..v2");
  writeFile(dir_ + "/..v2/config.yaml", configWithIp("10.0.1.2"));
  fs::create_directory_symlink("..v2", dir_ + "/..data_tmp");
  ASSERT_EQ(std::rename((dir_ + "/..data_tmp").c_str(), (dir_ + "/..data").c_str()), 0);
  fs::remove_all(dir_ + "/..v1");
  ASSERT_TRUE(pumpUntil([&] { return states_.size() == 2; }));
  EXPECT_EQ(lastIp(), "10.0.1.2");
}

TEST_F(WatcherTest, UnchangedContentDoesNotPublish) {
  writeFile(path_, configWithIp("10.0.0.1"));
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());
  // Rewrite the same bytes and touch the file: events arrive, nothing is published.
  writeFile(path_, configWithIp("10.0.0.1"));
  ASSERT_EQ(::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0), 0);
  // An unrelated file in the directory also produces events.
  writeFile(dir_ + "/other.txt", "x");
  pumpBriefly();
  EXPECT_EQ(states_.size(), 1u);
  EXPECT_FALSE(watcher_->lastError().has_value());
}

TEST_F(WatcherTest, CheckNowPollsWithoutEvents) {
  // The file is a symlink into another directory, which the inotify watch does not cover.
  char tmpl[] = "/tmp/zt-local-config-target-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string otherDir = tmpl;
  std::string target = otherDir + "/real.yaml";
  writeFile(target, configWithIp("10.0.2.1"));
  fs::create_symlink(target, path_);
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());

  watcher_->checkNow();  // unchanged: nothing
  EXPECT_EQ(states_.size(), 1u);
  writeFile(target, configWithIp("10.0.2.22"));  // different size ⇒ different signature
  watcher_->checkNow();
  ASSERT_EQ(states_.size(), 2u);
  EXPECT_EQ(lastIp(), "10.0.2.22");
  watcher_->checkNow();
  EXPECT_EQ(states_.size(), 2u);
  fs::remove_all(otherDir);
}

TEST_F(WatcherTest, DeletedFileKeepsStateUntilRecreated) {
  writeFile(path_, configWithIp("10.0.0.1"));
  makeWatcher();
  ASSERT_TRUE(watcher_->loadNow());
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  ASSERT_TRUE(pumpUntil([&] { return watcher_->lastError().has_value(); }));
  EXPECT_TRUE(watcher_->lastError()->is(XdsErrc::kIo));
  EXPECT_EQ(states_.size(), 1u);
  writeFile(path_, configWithIp("10.0.0.9"));
  ASSERT_TRUE(pumpUntil([&] { return states_.size() == 2; }));
  EXPECT_EQ(lastIp(), "10.0.0.9");
}

TEST_F(WatcherTest, LoadNowErrors) {
  makeWatcher();
  auto missing = watcher_->loadNow();
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(XdsErrc::kIo));
  writeFile(path_, "workloads:\n- name: x\n");
  auto bad = watcher_->loadNow();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().detail(), path_ + ":2:3: workloads[0]: missing required key \"uid\"");
  EXPECT_TRUE(states_.empty());
}

TEST(Watcher, CreateFailsWithoutDirectory) {
  auto w = LocalConfigWatcher::create("/nonexistent-zt-dir/config.yaml", {}, [](auto) {});
  ASSERT_FALSE(w);
  EXPECT_TRUE(w.error().is(XdsErrc::kIo));
  EXPECT_EQ(w.error().sysErrno(), ENOENT);
}

}  // namespace
}  // namespace zt::xds
