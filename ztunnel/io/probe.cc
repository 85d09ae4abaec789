#include "ztunnel/io/probe.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include "ztunnel/core/unique_fd.h"
#include "ztunnel/io/buf_ring.h"
#include "ztunnel/io/errors.h"
#include "ztunnel/io/ring.h"

namespace zt::io {
namespace {

std::optional<std::string> readSysctl(const char* path) {
  std::ifstream in(path);
  std::string value;
  if (!in || !std::getline(in, value)) {
    return std::nullopt;
  }
  return value;
}

std::string kernelRelease() {
  utsname u{};
  if (::uname(&u) != 0) {
    return "unknown";
  }
  return u.release;
}

// Waits (bounded) until a CQE with `op` arrives; returns its res/flags.
struct Cqe {
  int32_t res;
  uint32_t flags;
};
std::optional<Cqe> waitFor(Ring& ring, Op op) {
  for (int i = 0; i < 50; ++i) {
    if (!ring.submitAndWait(std::chrono::milliseconds(20))) {
      return std::nullopt;
    }
    std::optional<Cqe> found;
    ring.reap([&](const io_uring_cqe& cqe) {
      if (!found && unpack(cqe.user_data).op == op) {
        found = Cqe{cqe.res, cqe.flags};
      }
    });
    if (found) {
      return found;
    }
  }
  return std::nullopt;
}

// Multishot recv with a provided-buffer ring, on a socketpair.
void probeRecv(Ring& ring, RingFeatures& f) {
  auto buffers = BufRing::create(ring, BufRingOptions{.groupId = 0, .count = 2, .bufferSize = 64});
  if (!buffers) {
    return;
  }
  f.bufRing = true;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return;
  }
  UniqueFd a(sv[0]), b(sv[1]);
  ring.prepRecvMultishot(a.get(), 0, Token{Op::kRecv});
  if (!ring.submit()) {
    return;
  }
  char byte = 'x';
  if (::write(b.get(), &byte, 1) != 1) {
    return;
  }
  auto cqe = waitFor(ring, Op::kRecv);
  if (cqe && cqe->res == 1 && hasMore(cqe->flags)) {
    if (auto bid = bufferId(cqe->flags)) {
      f.multishotRecv = (*buffers)->take(*bid, 1).data()[0] == 'x';
    }
  }
  ring.prepCancelFd(a.get(), Token{Op::kCancel});
  (void)waitFor(ring, Op::kCancel);
}

// Multishot accept on an autobound abstract AF_UNIX listener.
void probeAccept(Ring& ring, RingFeatures& f) {
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) {
    return;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Binding with only the family autobinds to a unique abstract name.
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t)) != 0 ||
      ::listen(listener.get(), 4) != 0) {
    return;
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return;
  }
  ring.prepAcceptMultishot(listener.get(), Token{Op::kAccept});
  if (!ring.submit()) {
    return;
  }
  UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!client || ::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return;
  }
  auto cqe = waitFor(ring, Op::kAccept);
  if (cqe && cqe->res >= 0) {
    UniqueFd accepted(cqe->res);
    f.multishotAccept = hasMore(cqe->flags);
  }
  ring.prepCancelFd(listener.get(), Token{Op::kCancel});
  (void)waitFor(ring, Op::kCancel);
}

}  // namespace

Error setupFailure(int err) {
  std::string detail;
  IoErrc code = IoErrc::kUnavailable;
  switch (err) {
    case ENOSYS:
      detail =
          "io_uring_setup returned ENOSYS: the kernel has no io_uring (CONFIG_IO_URING) or a "
          "seccomp filter hides it; ztunnel-cpp needs Linux >= 6.1 with io_uring, and a seccomp "
          "profile allowing io_uring_setup, io_uring_enter and io_uring_register";
      break;
    case EPERM: {
      auto disabled = readSysctl("/proc/sys/kernel/io_uring_disabled");
      if (disabled && *disabled == "2") {
        detail =
            "io_uring_setup returned EPERM: sysctl kernel.io_uring_disabled=2 disables io_uring "
            "for every process; set kernel.io_uring_disabled=0";
      } else if (disabled && *disabled == "1") {
        auto group = readSysctl("/proc/sys/kernel/io_uring_group").value_or("?");
        detail =
            "io_uring_setup returned EPERM: sysctl kernel.io_uring_disabled=1 limits io_uring to "
            "CAP_SYS_ADMIN and members of kernel.io_uring_group (currently " +
            group + "); set kernel.io_uring_disabled=0 or run with that group";
      } else {
        detail =
            "io_uring_setup returned EPERM although kernel.io_uring_disabled is " +
            disabled.value_or("not present") +
            ": most likely a seccomp profile (container runtimes' default profiles block "
            "io_uring); allow io_uring_setup, io_uring_enter and io_uring_register in the pod's "
            "seccompProfile";
      }
      break;
    }
    case ENOMEM:
      detail =
          "io_uring_setup returned ENOMEM: ring memory could not be allocated (kernels before "
          "5.12 charge it to RLIMIT_MEMLOCK: raise `ulimit -l`)";
      break;
    default:
      code = IoErrc::kRingSetup;
      detail = "io_uring_queue_init_params";
      break;
  }
  return Error(code, std::move(detail), err);
}

std::string RingFeatures::describe() const {
  std::string out = "io_uring on " + kernelRelease + ":";
  auto flag = [&](bool on, const char* name) {
    out += on ? " +" : " -";
    out += name;
  };
  flag(singleIssuer, "single_issuer");
  flag(deferTaskrun, "defer_taskrun");
  flag(coopTaskrun, "coop_taskrun");
  flag(extArg, "ext_arg");
  flag(nodrop, "nodrop");
  flag(bufRing, "buf_ring");
  flag(multishotAccept, "multishot_accept");
  flag(multishotRecv, "multishot_recv");
  flag(opMsgRing, "msg_ring");
  return out;
}

Result<RingFeatures> probeIoUring() {
  RingFeatures f;
  f.kernelRelease = kernelRelease();
  auto ring = Ring::create(RingOptions{.entries = 8});
  if (!ring) {
    return fail(ring.error());
  }
  f.setupFlags = ring->setupFlags();
  f.features = ring->features();
  f.singleIssuer = (f.setupFlags & IORING_SETUP_SINGLE_ISSUER) != 0;
  f.deferTaskrun = (f.setupFlags & IORING_SETUP_DEFER_TASKRUN) != 0;
  f.coopTaskrun = (f.setupFlags & IORING_SETUP_COOP_TASKRUN) != 0;
  f.extArg = (f.features & IORING_FEAT_EXT_ARG) != 0;
  f.nodrop = (f.features & IORING_FEAT_NODROP) != 0;

  io_uring_probe* probe = io_uring_get_probe_ring(ring->raw());
  if (probe == nullptr) {
    return fail(IoErrc::kFeatureMissing, "IORING_REGISTER_PROBE failed (kernel " + f.kernelRelease +
                                             " is older than 5.6); ztunnel-cpp needs Linux >= 6.1");
  }
  auto has = [&](int op) { return io_uring_opcode_supported(probe, op) != 0; };
  f.opAccept = has(IORING_OP_ACCEPT);
  f.opRecv = has(IORING_OP_RECV);
  f.opSend = has(IORING_OP_SEND);
  f.opSendmsg = has(IORING_OP_SENDMSG);
  f.opConnect = has(IORING_OP_CONNECT);
  f.opShutdown = has(IORING_OP_SHUTDOWN);
  f.opClose = has(IORING_OP_CLOSE);
  f.opAsyncCancel = has(IORING_OP_ASYNC_CANCEL);
  f.opTimeout = has(IORING_OP_TIMEOUT);
  f.opLinkTimeout = has(IORING_OP_LINK_TIMEOUT);
  f.opRead = has(IORING_OP_READ);
  f.opMsgRing = has(IORING_OP_MSG_RING);
  io_uring_free_probe(probe);

  probeRecv(*ring, f);
  probeAccept(*ring, f);

  std::vector<std::string> missing;
  auto need = [&](bool present, const char* what) {
    if (!present) {
      missing.emplace_back(what);
    }
  };
  need(f.opAccept, "IORING_OP_ACCEPT (5.5)");
  need(f.opRecv, "IORING_OP_RECV (5.6)");
  need(f.opSend, "IORING_OP_SEND (5.6)");
  need(f.opSendmsg, "IORING_OP_SENDMSG (5.3)");
  need(f.opConnect, "IORING_OP_CONNECT (5.5)");
  need(f.opShutdown, "IORING_OP_SHUTDOWN (5.11)");
  need(f.opClose, "IORING_OP_CLOSE (5.6)");
  need(f.opAsyncCancel, "IORING_OP_ASYNC_CANCEL (5.5)");
  need(f.opTimeout, "IORING_OP_TIMEOUT (5.4)");
  need(f.opLinkTimeout, "IORING_OP_LINK_TIMEOUT (5.5)");
  need(f.opRead, "IORING_OP_READ (5.6)");
  need(f.extArg, "IORING_FEAT_EXT_ARG (5.11)");
  need(f.bufRing, "provided-buffer rings, io_uring_register_buf_ring (5.19)");
  need(f.multishotAccept, "multishot accept (5.19)");
  need(f.multishotRecv, "multishot recv (6.0)");
  if (!missing.empty()) {
    std::string detail = "kernel " + f.kernelRelease + " lacks";
    for (size_t i = 0; i < missing.size(); ++i) {
      detail += (i == 0 ? " " : ", ") + missing[i];
    }
    detail += "; ztunnel-cpp needs Linux >= 6.1 with these io_uring features";
    return fail(IoErrc::kFeatureMissing, std::move(detail));
  }
  return f;
}

}  // namespace zt::io
