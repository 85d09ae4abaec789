#pragma once

// Ring: RAII owner of one io_uring instance, plus Token-taking prep helpers.
//
// One Ring per worker thread. With SINGLE_ISSUER (the default) the kernel binds the ring to the
// thread that creates it: create it on the thread that will submit to it, and never touch it from
// another thread (cross-thread work goes through a Mailbox, see mailbox.h).
//
// Batching (liburing examples/proxy.c, Envoy delay_submit_): prep helpers only fill SQEs; nothing
// reaches the kernel until submit()/submitAndWait() — once per loop iteration — except when the SQ
// is full, where sqe() submits what is queued and retries, so it never returns null. reap() walks
// every ready CQE and advances the CQ once for the whole batch.
//
// Memory handed to a prep helper (buffers, msghdr, iovecs, sockaddrs) must stay valid and
// unchanged until the operation's CQE arrives; the kernel may read it at submit time or later.
// Timespecs for timeout/link-timeout are copied into the Ring (valid until submitted), so callers
// pass a Duration.
//
// Moving a Ring is allowed until something keeps a pointer to it (BufRing, EventLoop).

#include <liburing.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "ztunnel/core/clock.h"
#include "ztunnel/core/result.h"
#include "ztunnel/io/user_data.h"

namespace zt::io {

struct RingOptions {
  unsigned entries = 256;  // SQ size (rounded up to a power of two by the kernel; clamped)
  // CQ size; 0 means 4 x entries. Multishot ops post many CQEs per SQE, so keep it >= 2 x entries.
  unsigned cqEntries = 0;
  // Preferred setup flags; each is dropped (in the order DEFER_TASKRUN, COOP_TASKRUN,
  // SINGLE_ISSUER) if the kernel refuses it with EINVAL.
  bool singleIssuer = true;
  bool deferTaskrun = true;  // requires singleIssuer
  bool coopTaskrun = true;
  // io_uring_register_ring_fd: io_uring_enter skips the fd table lookup. The registration belongs
  // to the creating thread, which is the only one that may use the ring anyway.
  bool registerRingFd = true;
};

struct RingStats {
  uint64_t submits = 0;        // io_uring_enter calls that submitted (incl. submitAndWait)
  uint64_t sqFullSubmits = 0;  // submits forced by a full SQ inside sqe()
  uint64_t completions = 0;    // CQEs reaped
};

// --- CQE flag helpers (multishot and provided buffers are handled only through these) -----------

// IORING_CQE_F_MORE: the multishot operation stays armed and will post more CQEs. When it is clear
// on a multishot accept/recv CQE, the operation has terminated (error, EOF, -ENOBUFS, cancel, or
// the kernel chose to stop, e.g. CQ overflow): re-arm it if you still want events.
constexpr bool hasMore(uint32_t cqeFlags) {
  return (cqeFlags & IORING_CQE_F_MORE) != 0;
}

// IORING_CQE_F_BUFFER: the CQE consumed a provided buffer; its id is in the upper 16 bits. The
// buffer now belongs to the application, whatever `res` is (even 0): hand it to BufRing::take().
constexpr std::optional<uint16_t> bufferId(uint32_t cqeFlags) {
  if ((cqeFlags & IORING_CQE_F_BUFFER) == 0) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT);
}

// IORING_CQE_F_SOCK_NONEMPTY: more data was left in the socket after this recv.
constexpr bool socketNonEmpty(uint32_t cqeFlags) {
  return (cqeFlags & IORING_CQE_F_SOCK_NONEMPTY) != 0;
}

class Ring {
 public:
  // Creates the ring, falling back from the preferred setup flags as described in RingOptions.
  // Errors: IoErrc::kUnavailable (ENOSYS/EPERM, with the sysctl/seccomp hint of probe.h),
  // IoErrc::kRingSetup otherwise.
  static Result<Ring> create(const RingOptions& options = {});

  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&& other) noexcept;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  // A free SQE, zeroed by the prep helper that fills it. Never null: if the SQ is full, submits
  // the queued SQEs (counted in stats().sqFullSubmits) and retries. Aborts only if the kernel
  // refuses to accept submissions at all (ring used from the wrong thread).
  io_uring_sqe* sqe();
  // Makes sure `n` consecutive sqe() calls will not trigger a submit (used for linked chains,
  // which must not be split across submissions).
  void reserve(unsigned n);

  // Submits queued SQEs without waiting. Returns the number submitted.
  Result<unsigned> submit();
  // Submits queued SQEs and waits for at least one CQE or the timeout (nullopt: no timeout).
  // A timeout or a signal is not an error. With DEFER_TASKRUN this is also what runs the
  // completion task work, so call it (or submitAndGetEvents) before reap().
  Status submitAndWait(std::optional<Duration> timeout);
  // Submits and flushes pending completions without waiting.
  Status submitAndGetEvents();

  // Calls onCqe(const io_uring_cqe&) for each ready CQE (at most `max`), then advances the CQ
  // once. onCqe may prepare SQEs (even if that submits) but must not call reap() again.
  template <class F>
  unsigned reap(F&& onCqe, unsigned max = UINT32_MAX) {
    unsigned head;
    io_uring_cqe* cqe;
    unsigned n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (n == max) {
        break;
      }
      onCqe(static_cast<const io_uring_cqe&>(*cqe));
      ++n;
    }
    if (n > 0) {
      io_uring_cq_advance(&ring_, n);
      stats_.completions += n;
    }
    return n;
  }

  // Number of CQEs ready to reap.
  unsigned readyCqes() const { return io_uring_cq_ready(&ring_); }
  // SQEs prepared but not yet submitted.
  unsigned pendingSqes() const { return io_uring_sq_ready(&ring_); }

  // --- Prep helpers: each takes one SQE, fills it and tags it with `token`. The returned SQE may
  // be adjusted (e.g. sqe flags) before the next submit. ---

  io_uring_sqe* prepNop(Token token);
  // Multishot accept: one SQE, one CQE per accepted connection (res = new fd, SOCK_CLOEXEC) while
  // hasMore(flags). Peer addresses are not collected (use peerAddress()). An error such as
  // -EMFILE/-ENFILE ends the multishot: re-arm it from a short timer, not at once, or the loop
  // spins while the process is at its fd limit.
  io_uring_sqe* prepAcceptMultishot(int listenFd, Token token);
  // Single-shot accept; `addr`/`len` may be null.
  io_uring_sqe* prepAccept(int listenFd, sockaddr* addr, socklen_t* len, Token token);
  // recv into a caller-owned buffer.
  io_uring_sqe* prepRecv(int fd, void* buf, size_t len, Token token, int msgFlags = 0);
  // Multishot recv selecting buffers from provided-buffer group `groupId` (a BufRing): one CQE
  // per received chunk with IORING_CQE_F_BUFFER; res == 0 is EOF; -ENOBUFS (no F_MORE) when the
  // group ran dry — see buf_ring.h for re-arming.
  io_uring_sqe* prepRecvMultishot(int fd, uint16_t groupId, Token token, int msgFlags = 0);
  // send/sendmsg; MSG_NOSIGNAL is always added. For sendmsg the caller owns msghdr and iovecs
  // until the CQE. res is the byte count, which may be short: resubmit the rest.
  io_uring_sqe* prepSend(int fd, const void* buf, size_t len, Token token, int msgFlags = 0);
  io_uring_sqe* prepSendmsg(int fd, const msghdr* msg, Token token, int msgFlags = 0);
  // connect; `addr` must stay valid until the CQE.
  io_uring_sqe* prepConnect(int fd, const sockaddr* addr, socklen_t len, Token token);
  // connect followed by a linked timeout: if the connect has not completed after `timeout`, it
  // completes with -ECANCELED and the timeout CQE (timeoutToken) with -ETIME; otherwise the
  // timeout CQE has -ECANCELED (or -ENOENT in a race). Both CQEs always arrive.
  void prepConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len, Token token,
                              Duration timeout, Token timeoutToken);
  io_uring_sqe* prepShutdown(int fd, int how, Token token);
  io_uring_sqe* prepClose(int fd, Token token);
  io_uring_sqe* prepRead(int fd, void* buf, unsigned len, Token token);
  // Cancels every in-flight request on `fd` (IORING_ASYNC_CANCEL_FD | ALL). Its own CQE has the
  // number of cancelled requests or -ENOENT; each cancelled request completes with -ECANCELED.
  io_uring_sqe* prepCancelFd(int fd, Token token);
  // Cancels the request(s) tagged with `target` (all of them if `all`).
  io_uring_sqe* prepCancel(Token target, Token token, bool all = false);
  // Relative timeout: completes with -ETIME after `after`, or earlier with res 0 once `count`
  // other completions were posted (count 0: pure timer).
  io_uring_sqe* prepTimeout(Duration after, Token token, unsigned count = 0);

  const RingStats& stats() const { return stats_; }
  // The setup flags the kernel accepted (IORING_SETUP_*) and the features it reported.
  unsigned setupFlags() const { return ring_.flags; }
  unsigned features() const { return ring_.features; }
  bool ringFdRegistered() const { return ringFdRegistered_; }
  unsigned sqEntries() const { return ring_.sq.ring_entries; }
  unsigned cqEntries() const { return ring_.cq.ring_entries; }
  int fd() const { return ring_.ring_fd; }

  // Raw access for operations without a helper. Same threading rules.
  io_uring* raw() { return &ring_; }

 private:
  Ring() = default;
  __kernel_timespec* timespecFor(io_uring_sqe* sqe, Duration d);
  void close();

  io_uring ring_{};
  bool open_ = false;
  bool ringFdRegistered_ = false;
  RingStats stats_;
  // One timespec per SQ slot: the kernel reads a timeout's timespec when the SQE is submitted,
  // and an SQ slot is not reused before then.
  std::vector<__kernel_timespec> timespecs_;
};

}  // namespace zt::io
