#include "ztunnel/io/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "ztunnel/core/assert.h"
#include "ztunnel/io/errors.h"

namespace zt::io {

Result<std::unique_ptr<MailboxCore>> MailboxCore::create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  if (!fd) {
    return fail(IoErrc::kEventFd, "eventfd()", errno);
  }
  return std::make_unique<MailboxCore>(std::move(fd));
}

void MailboxCore::wake() {
  if (wakePending_.exchange(true, std::memory_order_seq_cst)) {
    return;  // a wake-up is already on its way; the loop will see this message too
  }
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = ::write(eventFd_.get(), &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  // The counter cannot overflow (at most one write per drain), so failure means a closed fd.
  ZT_RELEASE_ASSERT(n == sizeof(one), "mailbox eventfd write failed");
}

}  // namespace zt::io
