#pragma once

// Hexadecimal digits, for the text codecs (traceparent, percent-encoding, keylog lines).

namespace zt {

inline constexpr char kLowerHexDigits[] = "0123456789abcdef";

// The value of one hex digit (either case), or -1.
constexpr int hexDigitValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace zt
