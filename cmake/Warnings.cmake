option(ZT_WERROR "Treat warnings as errors (CI turns this on)" OFF)

function(zt_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-missing-field-initializers)
  # GCC 12 reports false -Wrestrict errors inside libstdc++ for `"x" + std::string` at -O2
  # (GCC bug 105651, fixed in GCC 13); Debian 12 ships GCC 12.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(ZT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
