// tests/fuzz/no_blocking_pool.cpp -- address.cpp resolves names through
// gort::blocking, which needs the runtime.  The address fuzzer only parses
// (split_host_port and Address::parse do no I/O and never resolve a name),
// so it links this instead of the runtime: no caller is a fiber, and a job
// would run inline.

#include <gort/blocking.h>

namespace gort {
bool in_fiber() { return false; }
namespace detail {
void run_blocking(void (*job)(void*), void* arg) { job(arg); }
}  // namespace detail
}  // namespace gort
