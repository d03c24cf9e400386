// fatal.h: gort::net's fatal errors, the runtime's convention (runtime/src/
// platform.h's fatal): "fatal error: ..." on stderr, exit status 2, no
// unwinding. For bugs in the caller, never for I/O (which returns Result).
#pragma once

#include <string>

namespace gort::net::detail {

[[noreturn]] void fatal(const std::string& what);

}  // namespace gort::net::detail
