#include "ztunnel/io/ring.h"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "ztunnel/core/assert.h"
#include "ztunnel/io/errors.h"
#include "ztunnel/io/probe.h"

namespace zt::io {

Result<Ring> Ring::create(const RingOptions& options) {
  if (options.entries == 0) {
    return fail(IoErrc::kInvalidArgument, "ring entries must be > 0");
  }
  unsigned cq = options.cqEntries != 0 ? options.cqEntries : 4 * options.entries;
  if (cq < 2 * options.entries) {
    return fail(IoErrc::kInvalidArgument, "cqEntries must be at least 2 x entries");
  }

  unsigned preferred = 0;
  if (options.singleIssuer) {
    preferred |= IORING_SETUP_SINGLE_ISSUER;
    if (options.deferTaskrun) {
      preferred |= IORING_SETUP_DEFER_TASKRUN;
    }
  }
  if (options.coopTaskrun) {
    preferred |= IORING_SETUP_COOP_TASKRUN;
  }
  // Older kernels reject unknown setup flags with EINVAL; drop them one at a time, most recent
  // first (DEFER_TASKRUN 6.1, SINGLE_ISSUER 6.0, COOP_TASKRUN 5.19).
  const unsigned dropOrder[] = {IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_COOP_TASKRUN,
                                IORING_SETUP_SINGLE_ISSUER};
  unsigned flags = preferred;
  Ring r;
  for (size_t attempt = 0;; ++attempt) {
    io_uring_params p{};
    p.flags = flags | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p.cq_entries = cq;
    int rc = io_uring_queue_init_params(options.entries, &r.ring_, &p);
    if (rc == 0) {
      break;
    }
    if (rc == -EINVAL && attempt < std::size(dropOrder)) {
      flags &= ~dropOrder[attempt];
      continue;
    }
    return fail(setupFailure(-rc));
  }
  r.open_ = true;
  r.timespecs_.resize(r.ring_.sq.ring_entries);
  // Optional optimisation (5.18+): failure just leaves the plain fd in use.
  r.ringFdRegistered_ = options.registerRingFd && io_uring_register_ring_fd(&r.ring_) == 1;
  return r;
}

Ring::Ring(Ring&& other) noexcept
    : ring_(other.ring_),
      open_(std::exchange(other.open_, false)),
      ringFdRegistered_(other.ringFdRegistered_),
      stats_(other.stats_),
      timespecs_(std::move(other.timespecs_)) {}

Ring& Ring::operator=(Ring&& other) noexcept {
  if (this != &other) {
    close();
    ring_ = other.ring_;
    open_ = std::exchange(other.open_, false);
    ringFdRegistered_ = other.ringFdRegistered_;
    stats_ = other.stats_;
    timespecs_ = std::move(other.timespecs_);
  }
  return *this;
}

Ring::~Ring() {
  close();
}

void Ring::close() {
  if (open_) {
    io_uring_queue_exit(&ring_);
    open_ = false;
  }
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s != nullptr) [[likely]] {
    return s;
  }
  // SQ full: hand what is queued to the kernel and retry (liburing proxy get_sqe()).
  for (int tries = 0; tries < 64; ++tries) {
    ++stats_.sqFullSubmits;
    int rc = io_uring_submit(&ring_);
    if (rc >= 0) {
      ++stats_.submits;
    } else if (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      break;
    }
    s = io_uring_get_sqe(&ring_);
    if (s != nullptr) {
      return s;
    }
  }
  ZT_RELEASE_ASSERT(false, "io_uring refuses submissions (ring used from another thread?)");
  return nullptr;
}

void Ring::reserve(unsigned n) {
  ZT_ASSERT(n <= sqEntries());
  if (io_uring_sq_space_left(&ring_) < n) {
    ++stats_.sqFullSubmits;
    int rc = io_uring_submit(&ring_);
    ZT_RELEASE_ASSERT(rc >= 0 || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY,
                      "io_uring refuses submissions (ring used from another thread?)");
    if (rc >= 0) {
      ++stats_.submits;
    }
  }
}

Result<unsigned> Ring::submit() {
  int rc = io_uring_submit(&ring_);
  if (rc < 0) {
    return fail(IoErrc::kSubmit, "io_uring_submit", -rc);
  }
  ++stats_.submits;
  return static_cast<unsigned>(rc);
}

Status Ring::submitAndWait(std::optional<Duration> timeout) {
  int rc;
  io_uring_cqe* cqe = nullptr;
  if (timeout) {
    Duration d = *timeout < Duration::zero() ? Duration::zero() : *timeout;
    __kernel_timespec ts{};
    ts.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(d).count();
    ts.tv_nsec = (d - std::chrono::seconds(ts.tv_sec)).count();
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  } else {
    rc = io_uring_submit_and_wait(&ring_, 1);
  }
  ++stats_.submits;
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    return fail(IoErrc::kSubmit, "io_uring_submit_and_wait", -rc);
  }
  return ok();
}

Status Ring::submitAndGetEvents() {
  int rc = io_uring_submit_and_get_events(&ring_);
  ++stats_.submits;
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    return fail(IoErrc::kSubmit, "io_uring_submit_and_get_events", -rc);
  }
  return ok();
}

namespace {
inline void tag(io_uring_sqe* s, Token t) {
  io_uring_sqe_set_data64(s, pack(t));
}
}  // namespace

__kernel_timespec* Ring::timespecFor(io_uring_sqe* s, Duration d) {
  if (d < Duration::zero()) {
    d = Duration::zero();
  }
  size_t index = static_cast<size_t>(s - ring_.sq.sqes);
  ZT_ASSERT(index < timespecs_.size());
  __kernel_timespec& ts = timespecs_[index];
  ts.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  ts.tv_nsec = (d - std::chrono::seconds(ts.tv_sec)).count();
  return &ts;
}

io_uring_sqe* Ring::prepNop(Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_nop(s);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepAcceptMultishot(int listenFd, Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listenFd, nullptr, nullptr, SOCK_CLOEXEC);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepAccept(int listenFd, sockaddr* addr, socklen_t* len, Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_accept(s, listenFd, addr, len, SOCK_CLOEXEC);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepRecv(int fd, void* buf, size_t len, Token token, int msgFlags) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, fd, buf, len, msgFlags);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepRecvMultishot(int fd, uint16_t groupId, Token token, int msgFlags) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, nullptr, 0, msgFlags);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = groupId;
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepSend(int fd, const void* buf, size_t len, Token token, int msgFlags) {
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, fd, buf, len, msgFlags | MSG_NOSIGNAL);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepSendmsg(int fd, const msghdr* msg, Token token, int msgFlags) {
  io_uring_sqe* s = sqe();
  io_uring_prep_sendmsg(s, fd, msg, static_cast<unsigned>(msgFlags | MSG_NOSIGNAL));
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepConnect(int fd, const sockaddr* addr, socklen_t len, Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_connect(s, fd, addr, len);
  tag(s, token);
  return s;
}

void Ring::prepConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len, Token token,
                                  Duration timeout, Token timeoutToken) {
  // Both SQEs must go to the kernel in the same submission or the link is lost.
  reserve(2);
  io_uring_sqe* c = prepConnect(fd, addr, len, token);
  c->flags |= IOSQE_IO_LINK;
  io_uring_sqe* t = sqe();
  io_uring_prep_link_timeout(t, timespecFor(t, timeout), 0);
  tag(t, timeoutToken);
}

io_uring_sqe* Ring::prepShutdown(int fd, int how, Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_shutdown(s, fd, how);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepClose(int fd, Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_close(s, fd);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepRead(int fd, void* buf, unsigned len, Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, fd, buf, len, 0);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepCancelFd(int fd, Token token) {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel_fd(s, fd, IORING_ASYNC_CANCEL_ALL);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepCancel(Token target, Token token, bool all) {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, pack(target), all ? IORING_ASYNC_CANCEL_ALL : 0);
  tag(s, token);
  return s;
}

io_uring_sqe* Ring::prepTimeout(Duration after, Token token, unsigned count) {
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, timespecFor(s, after), count, 0);
  tag(s, token);
  return s;
}

}  // namespace zt::io
