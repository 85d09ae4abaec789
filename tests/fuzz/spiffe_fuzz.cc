// libFuzzer target: SPIFFE id parsing (Identity::parse). Properties: no crash/UB; on success the
// identity is valid() and parse(toUri()) returns the same identity and the same text.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ztunnel/tls/spiffe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto id = zt::tls::Identity::parse(text);
  if (!id) {
    return 0;
  }
  if (!id->valid()) {
    std::abort();
  }
  std::string uri = id->toUri();
  if (uri != text) {
    std::abort();  // the accepted form is canonical: nothing is normalised away
  }
  auto again = zt::tls::Identity::parse(uri);
  if (!again || !(*again == *id) || again->hash() != id->hash()) {
    std::abort();
  }
  return 0;
}
