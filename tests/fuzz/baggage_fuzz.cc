// libFuzzer target: baggage and forwarded header codecs.
// Properties: no crash/UB; a decoded baggage re-encodes into a header that decodes to the same
// value; any Baggage built from arbitrary bytes round-trips through encode/decode; an accepted
// forwarded header rebuilt with buildForwarded parses back to the same for-address and host.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hbone/headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto b = hbone::decodeBaggage(text)) {
    auto again = hbone::decodeBaggage(hbone::encodeBaggage(*b));
    if (!again || !(*again == *b)) {
      std::abort();
    }
  }

  // Arbitrary field values (split on NUL) must survive encode -> decode.
  hbone::Baggage built;
  std::string* fields[] = {&built.clusterId,   &built.namespaceName,  &built.workloadName,
                           &built.serviceName, &built.serviceVersion, &built.region,
                           &built.zone};
  std::string_view rest = text;
  for (std::string* f : fields) {
    size_t nul = rest.find('\0');
    *f = std::string(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view{} : rest.substr(nul + 1);
  }
  if (!built.workloadName.empty()) {
    built.workloadType = "pod";
  }
  std::string encoded = hbone::encodeBaggage(built);
  if (encoded.size() <= 8192) {
    auto decoded = hbone::decodeBaggage(encoded);
    if (!decoded || !(*decoded == built)) {
      std::abort();
    }
  }

  if (auto f = hbone::parseForwarded(text); f && f->forAddress) {
    auto back = hbone::parseForwarded(hbone::buildForwarded(*f->forAddress, f->host));
    if (!back || back->forAddress != f->forAddress || back->host != f->host) {
      std::abort();
    }
  }
  return 0;
}
