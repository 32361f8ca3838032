# libgoalloc-override: goalloc as the process's malloc (see docs/override.md).
# Included by the top-level CMakeLists.txt. Builds
#   goalloc_override_shared  libgoalloc-override.so  for LD_PRELOAD
#   goalloc_override_static  libgoalloc-override.a   for link-time replacement
# from the core heap's objects (goalloc_objs) plus src/override.c (the malloc
# family) and src/override_cxx.cpp (operators new/delete, built without
# exceptions or RTTI so that the library never needs libstdc++), and
# registers the override tests: real programs run with and without the
# library (tests/override/run.sh), plus tests/test_override_*.c, which the
# tests directory registers by itself.

add_library(goalloc_override_objs OBJECT
  ${CMAKE_SOURCE_DIR}/src/override.c
  ${CMAKE_SOURCE_DIR}/src/override_cxx.cpp)
target_include_directories(goalloc_override_objs PRIVATE
  ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
set_target_properties(goalloc_override_objs PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  C_VISIBILITY_PRESET hidden
  CXX_VISIBILITY_PRESET hidden
  CXX_STANDARD 17             # std::align_val_t, sized deallocation
  CXX_STANDARD_REQUIRED ON)
# -fno-builtin: these files define malloc & co.; the compiler must not
# rewrite their bodies into calls of the functions being defined.
target_compile_options(goalloc_override_objs PRIVATE -fno-plt -fno-builtin
  $<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions -fno-rtti -funwind-tables>)
if(GOALLOC_VALGRIND)
  target_compile_definitions(goalloc_override_objs PRIVATE GOALLOC_VALGRIND=1)
endif()

add_library(goalloc_override_shared SHARED
  $<TARGET_OBJECTS:goalloc_objs> $<TARGET_OBJECTS:goalloc_override_objs>)
# Linked by the C driver: the C++ objects need no C++ runtime.
set_target_properties(goalloc_override_shared PROPERTIES
  OUTPUT_NAME goalloc-override
  LINKER_LANGUAGE C)
target_link_libraries(goalloc_override_shared PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
# Exports: the malloc family and operators new/delete, and the unshare and
# setns wrappers that stop the scavenger thread (solo.c), nothing else. Not the
# ga_* API: a program linked with libgoalloc.so keeps that library's heap
# (with its collector) for ga_malloc even when this one is preloaded. Not the
# core's pthread_create interposer either (it only serves the collector).
set(GA_OVR_MAP ${CMAKE_CURRENT_BINARY_DIR}/goalloc-override.map)
file(WRITE ${GA_OVR_MAP} "{
  global:
    malloc; free; calloc; realloc; reallocarray; cfree;
    posix_memalign; aligned_alloc; memalign; valloc; pvalloc;
    malloc_usable_size; unshare; setns;
    __libc_malloc; __libc_free; __libc_calloc; __libc_realloc;
    __libc_memalign; __libc_valloc; __libc_pvalloc;
    _Znwm; _Znam; _ZnwmRKSt9nothrow_t; _ZnamRKSt9nothrow_t;
    _ZnwmSt11align_val_t; _ZnamSt11align_val_t;
    _ZnwmSt11align_val_tRKSt9nothrow_t; _ZnamSt11align_val_tRKSt9nothrow_t;
    _ZdlPv*; _ZdaPv*;
  local: *;
};
")
# -Bsymbolic-functions: the library's own calls (malloc -> ga_malloc) are
# direct jumps, not PLT calls. nodelete: an allocator must never be unloaded.
target_link_options(goalloc_override_shared PRIVATE
  LINKER:--version-script=${GA_OVR_MAP}
  LINKER:-Bsymbolic-functions LINKER:-z,nodelete)
set_target_properties(goalloc_override_shared PROPERTIES LINK_DEPENDS ${GA_OVR_MAP})

add_library(goalloc_override_static STATIC
  $<TARGET_OBJECTS:goalloc_objs> $<TARGET_OBJECTS:goalloc_override_objs>)
set_target_properties(goalloc_override_static PROPERTIES
  OUTPUT_NAME goalloc-override
  LINKER_LANGUAGE C)
target_link_libraries(goalloc_override_static PUBLIC Threads::Threads ${CMAKE_DL_LIBS})
if(GOALLOC_VALGRIND)
  # For the tests that link it (tests/CMakeLists.txt): GA_VALGRIND_BUILD.
  target_compile_definitions(goalloc_override_static PUBLIC GOALLOC_VALGRIND=1)
endif()

# ---- tests ---------------------------------------------------------------
# Each runs a real program with and without the override (ordinary builds,
# linked against glibc's malloc; the override comes in by LD_PRELOAD, or by
# linking libgoalloc-override.a for the *_static programs), requires the
# same output, and checks GOALLOC_SHOW_STATS that goalloc served the
# allocations. Programs that are not installed fail the test with the name
# of the Debian package (.ci/packages installs them in CI).
enable_testing()
set(GA_OVR_TESTS ${CMAKE_SOURCE_DIR}/tests/override)

add_executable(override_cxx_threads ${GA_OVR_TESTS}/cxx_threads.cpp)
set_target_properties(override_cxx_threads PROPERTIES CXX_STANDARD 17)
target_link_libraries(override_cxx_threads PRIVATE Threads::Threads)

add_executable(override_cxx_threads_static ${GA_OVR_TESTS}/cxx_threads.cpp)
set_target_properties(override_cxx_threads_static PROPERTIES CXX_STANDARD 17)
target_link_libraries(override_cxx_threads_static PRIVATE
  goalloc_override_static Threads::Threads)

add_executable(override_fork ${GA_OVR_TESTS}/fork_threads.c)
target_link_libraries(override_fork PRIVATE Threads::Threads)

add_executable(override_threads ${GA_OVR_TESTS}/many_threads.c)
target_link_libraries(override_threads PRIVATE Threads::Threads)

add_executable(override_ns_solo ${GA_OVR_TESTS}/ns_solo.c)

# Link-time replacement of a C program: --whole-archive so that malloc is
# replaced even in a program that never names it (docs/override.md).
add_executable(override_static_link ${GA_OVR_TESTS}/static_link.c)
# A C program: linked by the C driver, proving the archive needs no libstdc++.
set_target_properties(override_static_link PROPERTIES LINKER_LANGUAGE C)
target_include_directories(override_static_link PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(override_static_link PRIVATE
  -Wl,--whole-archive goalloc_override_static -Wl,--no-whole-archive
  Threads::Threads)

set(GA_OVR_CASES python sqlite git gcc sort xz cxx_threads cxx_threads_static
  fork threads static_link ns_solo)
foreach(case ${GA_OVR_CASES})
  add_test(NAME override_${case}
    COMMAND bash ${GA_OVR_TESTS}/run.sh ${case}
      $<TARGET_FILE:goalloc_override_shared> $<TARGET_FILE_DIR:override_fork>)
  set_tests_properties(override_${case} PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
endforeach()
