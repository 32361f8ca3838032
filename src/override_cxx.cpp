/*
 * override_cxx.cpp — the C++ half of libgoalloc-override: every replaceable
 * global operator new and delete (plain, array, nothrow, sized, aligned and
 * their combinations, C++17's full set), so that C++ programs take goalloc's
 * fast path without going through malloc.
 *
 * Written in C++ so that the compiler checks the signatures and mangles the
 * names, but built without exceptions or RTTI and linked without the C++
 * runtime: a C program that preloads the library must not pull in
 * libstdc++. The two things operator new needs from the runtime, the
 * current new_handler and a way to throw std::bad_alloc, are taken from
 * libstdc++ when the process has it (weak references, else a lookup by
 * name at failure time, for a runtime loaded later with dlopen):
 *   std::get_new_handler()    _ZSt15get_new_handlerv
 *   std::__throw_bad_alloc()  _ZSt17__throw_bad_allocv
 * With neither (a C++ runtime other than libstdc++), an allocation that
 * fails in a throwing operator new aborts with a message instead of
 * throwing.
 *
 * Standard semantics kept: operator new loops calling the new_handler while
 * one is installed, and throws std::bad_alloc when none is; the nothrow
 * forms return nullptr instead. One difference: a new_handler that throws
 * inside a nothrow operator new is not caught here (this file has no
 * exception tables), so the exception reaches the caller.
 * Plain forms use the drop-in's malloc (ga__malloc_tc, the free cache's),
 * aligned forms ga_aligned_alloc; deletes of every form are ga__free_tc
 * (the size and alignment a sized or aligned delete passes are not needed:
 * the heap knows both from the pointer).
 */
#include <dlfcn.h>
#include <stddef.h>

#include <new>

#include "goalloc.h"

extern "C" void ga__sys_write_err(const char *msg, size_t len); // os.h
// The drop-in's malloc and free, with the free cache (internal.h).
extern "C" void *ga__malloc_tc(size_t size);
extern "C" void ga__free_tc(void *p);

// Linking libgoalloc-override.a statically into a C++ program that never
// names malloc itself must still replace malloc (libstdc++ and libc call
// it): this reference makes the linker take override.c's object whenever
// it takes this one.
extern "C" const char ga__override_c[];
__attribute__((used)) static const char *const pull_override_c = ga__override_c;

namespace std {
// Weak, so that a C program that preloads us does not need libstdc++.
new_handler get_new_handler() noexcept __attribute__((weak));
[[noreturn]] void __throw_bad_alloc() __attribute__((weak));
}  // namespace std

namespace {

typedef std::new_handler (*get_handler_fn)();
typedef void (*throw_fn)();

// The current new_handler, or nullptr. Only called after an allocation
// failed, so the lookup by name (for a runtime loaded after us) costs
// nothing on the fast path.
std::new_handler current_handler() {
  get_handler_fn get = &std::get_new_handler;
  if (get == nullptr)
    get = reinterpret_cast<get_handler_fn>(
        dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv"));
  return get != nullptr ? get() : nullptr;
}

[[noreturn]] __attribute__((noinline, cold)) void throw_bad_alloc() {
  throw_fn thr = &std::__throw_bad_alloc;
  if (thr == nullptr)
    thr = reinterpret_cast<throw_fn>(
        dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv"));
  if (thr != nullptr) thr();
  static const char msg[] =
      "goalloc: operator new: out of memory, and no C++ runtime to throw "
      "std::bad_alloc; aborting\n";
  ga__sys_write_err(msg, sizeof msg - 1);
  __builtin_trap();
}

// Failure path of the throwing forms: the standard's loop.
__attribute__((noinline)) void *new_slow(size_t size, size_t align) {
  for (;;) {
    void *p = align == 0 ? ga__malloc_tc(size)
                         : ga_aligned_alloc(align, size);
    if (p != nullptr) return p;
    std::new_handler h = current_handler();
    if (h == nullptr) throw_bad_alloc();
    h();
  }
}

// Failure path of the nothrow forms.
__attribute__((noinline)) void *new_nothrow_slow(size_t size, size_t align) {
  for (;;) {
    void *p = align == 0 ? ga__malloc_tc(size)
                         : ga_aligned_alloc(align, size);
    if (p != nullptr) return p;
    std::new_handler h = current_handler();
    if (h == nullptr) return nullptr;
    h();
  }
}

inline void *new_impl(size_t size) {
  void *p = ga__malloc_tc(size);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return new_slow(size, 0);
}

inline void *new_nothrow_impl(size_t size) {
  void *p = ga__malloc_tc(size);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return new_nothrow_slow(size, 0);
}

inline void *new_aligned_impl(size_t size, std::align_val_t al) {
  void *p = ga_aligned_alloc(static_cast<size_t>(al), size);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return new_slow(size, static_cast<size_t>(al));
}

inline void *new_aligned_nothrow_impl(size_t size, std::align_val_t al) {
  void *p = ga_aligned_alloc(static_cast<size_t>(al), size);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return new_nothrow_slow(size, static_cast<size_t>(al));
}

}  // namespace

#define OVR_EXPORT __attribute__((visibility("default")))

OVR_EXPORT void *operator new(size_t n) { return new_impl(n); }
OVR_EXPORT void *operator new[](size_t n) { return new_impl(n); }
OVR_EXPORT void *operator new(size_t n, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(n);
}
OVR_EXPORT void *operator new[](size_t n, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(n);
}
OVR_EXPORT void *operator new(size_t n, std::align_val_t al) {
  return new_aligned_impl(n, al);
}
OVR_EXPORT void *operator new[](size_t n, std::align_val_t al) {
  return new_aligned_impl(n, al);
}
OVR_EXPORT void *operator new(size_t n, std::align_val_t al,
                              const std::nothrow_t &) noexcept {
  return new_aligned_nothrow_impl(n, al);
}
OVR_EXPORT void *operator new[](size_t n, std::align_val_t al,
                                const std::nothrow_t &) noexcept {
  return new_aligned_nothrow_impl(n, al);
}

OVR_EXPORT void operator delete(void *p) noexcept { ga__free_tc(p); }
OVR_EXPORT void operator delete[](void *p) noexcept { ga__free_tc(p); }
OVR_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete(void *p, size_t) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete[](void *p, size_t) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete(void *p, std::align_val_t) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete[](void *p, std::align_val_t) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete(void *p, std::align_val_t,
                                const std::nothrow_t &) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete[](void *p, std::align_val_t,
                                  const std::nothrow_t &) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete(void *p, size_t, std::align_val_t) noexcept {
  ga__free_tc(p);
}
OVR_EXPORT void operator delete[](void *p, size_t, std::align_val_t) noexcept {
  ga__free_tc(p);
}
