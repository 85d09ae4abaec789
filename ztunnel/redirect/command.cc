#include "ztunnel/redirect/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "ztunnel/core/unique_fd.h"

extern char** environ;

namespace zt::redirect {

namespace {

std::string_view describeRedirect(int code) noexcept {
  switch (static_cast<RedirectErrc>(code)) {
    case RedirectErrc::kSpawnFailed:
      return "could not start command";
    case RedirectErrc::kCommandFailed:
      return "command failed";
    case RedirectErrc::kTimedOut:
      return "command timed out";
    case RedirectErrc::kInvalidOptions:
      return "invalid redirect options";
    case RedirectErrc::kUnexpectedState:
      return "unexpected rule state";
  }
  return "unknown redirect error";
}

// Owns posix_spawn_file_actions_t for the duration of one spawn.
class FileActions {
 public:
  FileActions() { ok_ = posix_spawn_file_actions_init(&actions_) == 0; }
  ~FileActions() {
    if (ok_) {
      posix_spawn_file_actions_destroy(&actions_);
    }
  }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  bool ok() const { return ok_; }
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_{};
  bool ok_ = false;
};

int exitStatusOf(int wstatus) {
  if (WIFEXITED(wstatus)) {
    return WEXITSTATUS(wstatus);
  }
  if (WIFSIGNALED(wstatus)) {
    return 128 + WTERMSIG(wstatus);
  }
  return 255;
}

int waitChild(pid_t pid) {
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      return 255;
    }
  }
  return exitStatusOf(wstatus);
}

// Spawns argv with the given fds as stdin/stdout/stderr. Tries PATH first, then the sbin
// directories: root's tools live there and a test runner's PATH may not include them.
Result<pid_t> spawn(const std::vector<std::string>& argv, int in, int out, int err) {
  FileActions actions;
  if (!actions.ok() || posix_spawn_file_actions_adddup2(actions.get(), in, STDIN_FILENO) != 0 ||
      posix_spawn_file_actions_adddup2(actions.get(), out, STDOUT_FILENO) != 0 ||
      posix_spawn_file_actions_adddup2(actions.get(), err, STDERR_FILENO) != 0) {
    return fail(RedirectErrc::kSpawnFailed, "posix_spawn_file_actions for " + argv[0], ENOMEM);
  }
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    cargv.push_back(const_cast<char*>(a.c_str()));
  }
  cargv.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0].c_str(), actions.get(), nullptr, cargv.data(), environ);
  if (rc == ENOENT && argv[0].find('/') == std::string::npos) {
    for (const char* dir : {"/usr/sbin/", "/sbin/"}) {
      std::string path = std::string(dir) + argv[0];
      rc = posix_spawn(&pid, path.c_str(), actions.get(), nullptr, cargv.data(), environ);
      if (rc != ENOENT) {
        break;
      }
    }
  }
  if (rc != 0) {
    return fail(RedirectErrc::kSpawnFailed, argv[0], rc);
  }
  return pid;
}

}  // namespace

const ErrorCategory& errorCategory(RedirectErrc) noexcept {
  static constexpr ErrorCategory kCategory{"redirect", &describeRedirect};
  return kCategory;
}

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) {
      out += ' ';
    }
    out += a;
  }
  return out;
}

Result<CommandResult> runCommand(const std::vector<std::string>& argv, std::string_view input,
                                 std::chrono::milliseconds timeout) {
  if (argv.empty()) {
    return fail(RedirectErrc::kSpawnFailed, "empty command");
  }
  // stdin is a socketpair rather than a pipe so that writing to a child that exited early fails
  // with EPIPE via MSG_NOSIGNAL instead of raising SIGPIPE in this process.
  int inPair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, inPair) != 0) {
    return fail(systemError("socketpair"));
  }
  UniqueFd inParent(inPair[0]);
  UniqueFd inChild(inPair[1]);
  int outPipe[2];
  if (::pipe2(outPipe, O_CLOEXEC) != 0) {
    return fail(systemError("pipe2"));
  }
  UniqueFd outRead(outPipe[0]);
  UniqueFd outWrite(outPipe[1]);
  int errPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    return fail(systemError("pipe2"));
  }
  UniqueFd errRead(errPipe[0]);
  UniqueFd errWrite(errPipe[1]);

  auto pid = spawn(argv, inChild.get(), outWrite.get(), errWrite.get());
  if (!pid) {
    return fail(std::move(pid).error());
  }
  inChild.reset();
  outWrite.reset();
  errWrite.reset();

  for (int fd : {inParent.get(), outRead.get(), errRead.get()}) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      int e = errno;
      ::kill(*pid, SIGKILL);
      waitChild(*pid);
      return fail(systemError("fcntl O_NONBLOCK", e));
    }
  }
  if (input.empty()) {
    inParent.reset();
  }

  CommandResult result;
  size_t written = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (outRead || errRead) {
    pollfd fds[3];
    nfds_t n = 0;
    int inIdx = -1, outIdx = -1, errIdx = -1;
    if (inParent) {
      inIdx = static_cast<int>(n);
      fds[n++] = {inParent.get(), POLLOUT, 0};
    }
    if (outRead) {
      outIdx = static_cast<int>(n);
      fds[n++] = {outRead.get(), POLLIN, 0};
    }
    if (errRead) {
      errIdx = static_cast<int>(n);
      fds[n++] = {errRead.get(), POLLIN, 0};
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(*pid, SIGKILL);
      waitChild(*pid);
      return fail(RedirectErrc::kTimedOut,
                  joinArgv(argv) + " after " + std::to_string(timeout.count()) + " ms");
    }
    int rc = ::poll(fds, n, static_cast<int>(left.count()));
    if (rc < 0) {
      if (errno == EINTR) {
        continue;
      }
      int e = errno;
      ::kill(*pid, SIGKILL);
      waitChild(*pid);
      return fail(systemError("poll", e));
    }
    if (inIdx >= 0 && fds[inIdx].revents != 0) {
      ssize_t w = ::send(inParent.get(), input.data() + written, input.size() - written,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        written += static_cast<size_t>(w);
      }
      // EPIPE: the child stopped reading (it exited or failed); its status will tell.
      if (written == input.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        inParent.reset();  // EOF for the child
      }
    }
    auto drain = [](UniqueFd& fd, short revents, std::string& into) {
      if (revents == 0) {
        return;
      }
      char buf[4096];
      for (;;) {
        ssize_t r = ::read(fd.get(), buf, sizeof buf);
        if (r > 0) {
          into.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r < 0 && (errno == EINTR)) {
          continue;
        }
        if (r < 0 && errno == EAGAIN) {
          return;
        }
        fd.reset();  // EOF or a read error: nothing more will come
        return;
      }
    };
    if (outIdx >= 0) {
      drain(outRead, fds[outIdx].revents, result.out);
    }
    if (errIdx >= 0) {
      drain(errRead, fds[errIdx].revents, result.err);
    }
  }
  inParent.reset();
  // Both output pipes are closed; the child is normally gone or about to be. Still bound the wait
  // in case it closed them and kept running.
  for (;;) {
    int wstatus = 0;
    pid_t w = ::waitpid(*pid, &wstatus, WNOHANG);
    if (w == *pid) {
      result.exitStatus = exitStatusOf(wstatus);
      return result;
    }
    if (w < 0 && errno != EINTR) {
      return fail(systemError("waitpid " + argv[0]));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(*pid, SIGKILL);
      waitChild(*pid);
      return fail(RedirectErrc::kTimedOut,
                  joinArgv(argv) + " after " + std::to_string(timeout.count()) + " ms");
    }
    ::usleep(1000);
  }
}

Result<std::string> runChecked(const std::vector<std::string>& argv, std::string_view input,
                               std::chrono::milliseconds timeout) {
  auto r = runCommand(argv, input, timeout);
  if (!r) {
    return fail(std::move(r).error());
  }
  if (r->exitStatus != 0) {
    std::string err = r->err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) {
      err.pop_back();
    }
    std::string detail = joinArgv(argv) + " exited with status " + std::to_string(r->exitStatus);
    if (!err.empty()) {
      detail += ": " + err;
    }
    return fail(RedirectErrc::kCommandFailed, std::move(detail));
  }
  return std::move(r->out);
}

}  // namespace zt::redirect
