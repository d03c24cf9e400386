// result.h: gort::net's one error convention.
//
// Every operation returns Result<T>: a value or an Error. An Error's code()
// is an Errc that callers test (`r.error() == Errc::kEof`); conditions a
// program reacts to (end of file, deadline, reset, closed, ...) each have
// their own value, and any other errno is Errc::kSystem with the errno kept
// in sys_errno(). End of file is an ordinary Error, never an exception;
// gort::net throws nothing but std::bad_alloc.
//
// Errors from dial, listen, accept, read and write name the operation and
// the address, as Go's net.OpError does: message() reads
// "dial tcp 127.0.0.1:1: connection refused". End of file stays bare (Go's
// io.EOF). Reading value() of an error, or error() of a success, is a bug:
// a fatal error (message on stderr, exit status 2) like the runtime's.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace gort::net {

enum class Errc : unsigned char {
  kEof,                  // the peer closed its side: no more data
  kTimeout,              // a deadline passed (or the dial timeout)
  kClosed,               // the Conn/Listener was closed (by this process)
  kReset,                // ECONNRESET: the peer aborted the connection
  kBrokenPipe,           // EPIPE: writing after the peer stopped reading
  kRefused,              // ECONNREFUSED: nobody listens there
  kAddressInUse,         // EADDRINUSE: listen on an address already bound
  kAddressNotAvailable,  // EADDRNOTAVAIL
  kInvalidAddress,       // the address string is malformed (detail() says how)
  kHostNotFound,         // the name did not resolve
  kLineTooLong,          // read_line: no line end within max_len bytes
  kNotInFiber,           // would have to wait, but the caller is not a gort fiber
  kCanceled,             // the call's gort::Context was canceled (its deadline gives kTimeout)
  kSystem,               // any other errno: see sys_errno()
};

class Error {
 public:
  constexpr Error(Errc code, int sys_errno = 0, const char* detail = nullptr)
      : code_(code), sys_errno_(sys_errno), detail_(detail) {}
  // Maps an errno to the Errc a caller tests; unknown ones become kSystem.
  static Error from_errno(int e);

  Errc code() const { return code_; }
  int sys_errno() const { return sys_errno_; }                   // 0 unless the kernel reported it
  const char* detail() const { return detail_ ? detail_ : ""; }  // what was wrong, for kInvalidAddress etc.
  // The operation and address, e.g. "dial tcp 127.0.0.1:1"; "" if none.
  const char* op() const { return op_ ? op_->c_str() : ""; }
  // A copy of this error that names the operation and address.
  Error with_op(std::string op) const;
  // e.g. "read tcp 127.0.0.1:8080->127.0.0.1:40312: connection reset by peer"
  std::string message() const;

  friend bool operator==(const Error& e, Errc c) { return e.code_ == c; }
  friend bool operator==(const Error& a, const Error& b) { return a.code_ == b.code_ && a.sys_errno_ == b.sys_errno_; }

 private:
  Errc code_;
  int sys_errno_;
  const char* detail_;                     // static string or null
  std::shared_ptr<const std::string> op_;  // "dial tcp host:port" or null; built only on error paths
};

const char* to_string(Errc c);

namespace detail {
[[noreturn]] void bad_result_access(const Error& e);
[[noreturn]] void bad_error_access();
}  // namespace detail

// A value of type T or an Error (std::expected, for C++20).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(error) {}
  Result(Errc code) : v_(Error(code)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // Accessing the value of an error is a bug: a fatal error with its message.
  T& value() & {
    check();
    return std::get<0>(v_);
  }
  const T& value() const& {
    check();
    return std::get<0>(v_);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The error; calling it on a success is a bug (a fatal error).
  const Error& error() const {
    if (ok()) detail::bad_error_access();
    return std::get<1>(v_);
  }

 private:
  void check() const {
    if (!ok()) detail::bad_result_access(std::get<1>(v_));
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(error), ok_(false) {}
  Result(Errc code) : error_(code), ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const {
    if (!ok_) detail::bad_result_access(error_);
  }
  const Error& error() const {
    if (ok_) detail::bad_error_access();
    return error_;
  }

 private:
  Error error_{Errc::kSystem};
  bool ok_ = true;
};

}  // namespace gort::net
