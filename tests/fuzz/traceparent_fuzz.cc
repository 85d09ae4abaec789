// libFuzzer target: W3C traceparent validation.
// Properties: no crash/UB; an accepted traceparent has non-zero ids and prints (as version 00)
// to text that parses back to the same value; for a version-00 input the printout equals the
// input (nothing is normalised).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hbone/headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tc = hbone::TraceContext::parse(text);
  if (!tc) {
    return 0;
  }
  auto zero = [](const auto& a) {
    return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
  };
  if (zero(tc->traceId) || zero(tc->parentId)) {
    std::abort();
  }
  std::string printed = tc->toString();
  auto again = hbone::TraceContext::parse(printed);
  if (!again || !(*again == *tc)) {
    std::abort();
  }
  if (text.starts_with("00-") && printed != text) {
    std::abort();
  }
  return 0;
}
