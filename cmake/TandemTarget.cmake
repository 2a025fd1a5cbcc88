# tandem_warnings(target): our own code builds with -Wall -Wextra -Werror.
function(tandem_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

# tandem_light_opt(target): -O1 instead of -O3 in Release for code whose speed
# does not matter (the command-line front end; every kernel and model path it
# calls stays -O3 in the libraries). Build time: CLI11's generated code costs a
# third less CPU to compile at -O1 (docs/building.md). No -ffast-math anywhere,
# so float results do not depend on the level. The sanitizer build is -O1 for
# everything already. (Test programs go further, to -O0: tandem_test below.)
function(tandem_light_opt target)
  target_compile_options(${target} PRIVATE $<$<CONFIG:Release>:-O1>)
endfunction()

# tandem_library(name SOURCES... [DEPS ...] [PUBLIC_DEPS ...]):
# one static library per src/ folder; headers are included as "<folder>/file.h" from src/.
function(tandem_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  if(NOT ARG_SOURCES)
    # A folder with headers only (so far): an interface library keeps the graph intact.
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(${name} INTERFACE ${ARG_DEPS} ${ARG_PUBLIC_DEPS})
    return()
  endif()
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} PUBLIC ${ARG_PUBLIC_DEPS})
  tandem_warnings(${name})
endfunction()

# tandem_test(name [RUNS_TANDEM] SOURCES... DEPS ...): a GoogleTest program registered
# with CTest, one per tests/<area> (one link and one test listing per area, not per
# file). RUNS_TANDEM: its tests run the built `tandem` executable, whose path they
# get as TANDEM_EXE; it is built first.
function(tandem_test name)
  cmake_parse_arguments(ARG "RUNS_TANDEM" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE TANDEM_FIXTURES="${TANDEM_FIXTURES}"
                                            TANDEM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(ARG_RUNS_TANDEM)
    target_compile_definitions(${name} PRIVATE TANDEM_EXE="$<TARGET_FILE:tandem>")
    add_dependencies(${name} tandem)
  endif()
  tandem_warnings(${name})
  # -O0 in every build: a test program's own code is assertions, setup and
  # small reference loops, and gtest's macros make -O1 code generation its
  # largest compile cost (sanitizer build: 702 -> 460 CPU s for all tests).
  # What the tests exercise, the libraries, keeps its build's level.
  target_compile_options(${name} PRIVATE -O0)
  # Unity batches of 4 files (TANDEM_UNITY): the files of an area share their
  # headers' parsing and their gtest / json / std instantiations. So a test file's
  # file-local names must not clash with another's in its area: helpers used by
  # two files live once in the area's shared header (test_util.h, proc.h, ...).
  # Files with their own compile options (tests/grammar) build on their own.
  set_target_properties(${name} PROPERTIES UNITY_BUILD ${TANDEM_UNITY} UNITY_BUILD_BATCH_SIZE 4)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
endfunction()
