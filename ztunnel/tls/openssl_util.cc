#include "ztunnel/tls/openssl_util.h"

#include <openssl/err.h>

#include <climits>

namespace zt::tls {

std::string drainOpenSslErrors() {
  std::string out;
  const char* file = nullptr;
  const char* func = nullptr;
  const char* data = nullptr;
  int line = 0;
  int flags = 0;
  // Cap what we keep: a hostile peer cannot make the queue long, but a bug could.
  constexpr size_t kMaxText = 1024;
  unsigned long code;
  while ((code = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
    if (out.size() >= kMaxText) {
      continue;  // keep draining
    }
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ")";
    }
  }
  return out;
}

Error opensslError(TlsErrc code, std::string_view what) {
  std::string detail(what);
  std::string queue = drainOpenSslErrors();
  if (!queue.empty()) {
    detail += ": ";
    detail += queue;
  }
  return Error(code, std::move(detail));
}

BioPtr memoryBio(std::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) {
    return nullptr;
  }
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bioToString(BIO* bio) {
  char* ptr = nullptr;
  long len = BIO_get_mem_data(bio, &ptr);
  if (len <= 0 || ptr == nullptr) {
    return {};
  }
  return std::string(ptr, static_cast<size_t>(len));
}

}  // namespace zt::tls
