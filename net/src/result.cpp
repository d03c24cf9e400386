// result.cpp: error codes and their messages.
#include <gort/net/result.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "fatal.h"

namespace gort::net {

Error Error::from_errno(int e) {
  switch (e) {
    case ECONNRESET: return Error(Errc::kReset, e);
    case EPIPE: return Error(Errc::kBrokenPipe, e);
    case ECONNREFUSED: return Error(Errc::kRefused, e);
    case EADDRINUSE: return Error(Errc::kAddressInUse, e);
    case EADDRNOTAVAIL: return Error(Errc::kAddressNotAvailable, e);
    case ETIMEDOUT: return Error(Errc::kTimeout, e);
    default: return Error(Errc::kSystem, e);
  }
}

const char* to_string(Errc c) {
  switch (c) {
    case Errc::kEof: return "end of file";
    case Errc::kTimeout: return "i/o timeout";
    case Errc::kClosed: return "use of closed network connection";
    case Errc::kReset: return "connection reset by peer";
    case Errc::kBrokenPipe: return "broken pipe";
    case Errc::kRefused: return "connection refused";
    case Errc::kAddressInUse: return "address already in use";
    case Errc::kAddressNotAvailable: return "cannot assign requested address";
    case Errc::kInvalidAddress: return "invalid address";
    case Errc::kHostNotFound: return "no such host";
    case Errc::kLineTooLong: return "line too long";
    case Errc::kNotInFiber: return "would block outside a gort fiber";
    case Errc::kCanceled: return "operation was canceled";
    case Errc::kSystem: return "system error";
  }
  return "?";
}

Error Error::with_op(std::string op) const {
  Error e = *this;
  e.op_ = std::make_shared<const std::string>(std::move(op));
  return e;
}

std::string Error::message() const {
  std::string m;
  if (op_ && !op_->empty()) {
    m += *op_;
    m += ": ";
  }
  m += to_string(code_);
  if (detail_ != nullptr && *detail_ != '\0') {
    m += ": ";
    m += detail_;
  }
  if (sys_errno_ != 0 && code_ == Errc::kSystem) {
    m += ": ";
    m += std::strerror(sys_errno_);
  }
  if (sys_errno_ != 0 && code_ == Errc::kSystem) {
    const char* name = strerrorname_np(sys_errno_);
    m += " (";
    m += name ? name : std::to_string(sys_errno_).c_str();
    m += ")";
  }
  return m;
}

namespace detail {

void fatal(const std::string& what) {
  std::fflush(nullptr);
  std::fprintf(stderr, "fatal error: %s\n", what.c_str());
  std::fflush(stderr);
  _exit(2);
}

void bad_result_access(const Error& e) { fatal("gort::net::Result::value() on an error: " + e.message()); }
void bad_error_access() { fatal("gort::net::Result::error() on a success"); }

}  // namespace detail

}  // namespace gort::net
