# zt_module(<name> [DEPS <targets>...])
#
# Declares the static library `zt_<name>` from every *.cc in the calling folder (re-globbed at build
# time, so a new file needs no CMake edit). DEPS are the link edges and therefore the layering: a
# module may only list modules of the layers above it (see ARCHITECTURE.md). Includes are rooted at
# the project root: `#include "ztunnel/<module>/<file>.h"`.
function(zt_module name)
  cmake_parse_arguments(M "" "" "DEPS;SOURCES" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  list(FILTER srcs EXCLUDE REGEX ".*/main\\.cc$")
  list(APPEND srcs ${M_SOURCES})
  if(srcs)
    add_library(zt_${name} STATIC ${srcs})
    target_include_directories(zt_${name} PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(zt_${name} PUBLIC ${M_DEPS})
    zt_target_warnings(zt_${name})
  else()
    # Header-only so far: keep the target so dependants link the same way.
    add_library(zt_${name} INTERFACE)
    target_include_directories(zt_${name} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(zt_${name} INTERFACE ${M_DEPS})
  endif()
endfunction()

# zt_unit_tests(<module> DEPS <targets>...)
#
# One GoogleTest binary `unit_<module>` from every *_test.cc in the calling folder; each test case
# becomes its own ctest test (label "unit").
function(zt_unit_tests module)
  cmake_parse_arguments(T "" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cc)
  if(NOT srcs)
    return()
  endif()
  add_executable(unit_${module} ${srcs})
  target_link_libraries(unit_${module} PRIVATE ${T_DEPS} zt_test_support GTest::gmock GTest::gtest_main)
  zt_target_warnings(unit_${module})
  gtest_discover_tests(unit_${module}
    PROPERTIES LABELS unit
    DISCOVERY_TIMEOUT 60
    TEST_PREFIX "${module}.")
endfunction()
