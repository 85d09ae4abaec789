#pragma once

// ZT_ASSERT: a debug-only invariant of our own code (compiled out in NDEBUG builds).
// ZT_RELEASE_ASSERT: the process cannot continue safely; aborts in every build.
// Never assert on peer input or on the environment: those are errors, returned as values.

#include <cstdio>
#include <cstdlib>

#define ZT_RELEASE_ASSERT(cond, msg)                                                       \
  do {                                                                                     \
    if (!(cond)) [[unlikely]] {                                                            \
      std::fprintf(stderr, "ztunnel: fatal: %s:%d: assertion `%s` failed: %s\n", __FILE__, \
                   __LINE__, #cond, msg);                                                  \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

#ifdef NDEBUG
#define ZT_ASSERT(cond) ((void)0)
#else
#define ZT_ASSERT(cond) ZT_RELEASE_ASSERT(cond, "debug invariant")
#endif
