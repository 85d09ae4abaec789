// libFuzzer target: CONNECT :authority parsing and server-side CONNECT validation.
// Properties: no crash/UB; an accepted Authority prints to text that parses back to an equal
// value (and that text is a fixed point); a header list accepted by ConnectRequestParser
// re-serialises (toHeaders) into a list the parser accepts again, giving an equal request.
//
// Input: the whole input is tried as an authority; then it is split into lines, each
// "name\tvalue" (or "name" alone), fed to ConnectRequestParser as one header block.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hbone/connect_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto a = hbone::Authority::parse(text)) {
    std::string printed = a->toString();
    auto again = hbone::Authority::parse(printed);
    if (!again || !(*again == *a) || again->toString() != printed) {
      std::abort();
    }
    if (a->port() == 0 || (!a->isAddress() && a->host().empty())) {
      std::abort();
    }
  }

  hbone::ConnectRequestParser parser;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    size_t tab = line.find('\t');
    parser.add(line.substr(0, tab),
               tab == std::string_view::npos ? std::string_view{} : line.substr(tab + 1));
  }
  auto request = std::move(parser).finish();
  if (!request) {
    return 0;
  }
  hbone::ConnectRequestParser again;
  for (const auto& h : request->toHeaders()) {
    again.add(h.name, h.value);
  }
  auto back = std::move(again).finish();
  if (!back || !(*back == *request)) {
    std::abort();
  }
  return 0;
}
