option(ZT_WERROR "Treat warnings as errors (CI turns this on)" OFF)

function(zt_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-missing-field-initializers)
  if(ZT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
