# ZT_SANITIZE=ON builds everything with AddressSanitizer + UndefinedBehaviorSanitizer.
# ZT_BUILD_FUZZ=ON (clang only) additionally instruments for libFuzzer; fuzz targets get
# -fsanitize=fuzzer at link time, the libraries only -fsanitize=fuzzer-no-link.
option(ZT_SANITIZE "Build with ASan + UBSan" OFF)
option(ZT_BUILD_FUZZ "Build libFuzzer targets (requires clang)" OFF)

if(ZT_SANITIZE OR ZT_BUILD_FUZZ)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

if(ZT_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "ZT_BUILD_FUZZ needs clang: configure with CC=clang CXX=clang++")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
