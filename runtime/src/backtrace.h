// backtrace.h: the call stacks the fiber dump prints, and the names of
// their frames.
//
// Three ways in, one per situation:
//  * A parked fiber, from another thread (the dump): its registers are the
//    ones Boost.Context saved on its stack when it switched out. The dump
//    copies the stack and unwinds the copy (backtrace.cpp says why that
//    is safe while workers run).
//  * The calling thread's own stack (an unhandled exception, reported
//    where it was thrown, before anything is unwound).
//  * A signal's context (a stack overflow, on the signal stack): only
//    async-signal-safe steps.
//
// The unwinder is libunwind (Debian's libunwind-dev): it follows the
// DWARF call-frame information every binary carries in .eh_frame, so it
// needs no frame pointers, it caches what it parsed per address across
// calls, it lets the caller supply the memory and registers (an address
// space of our own whose reads come from the copy), and its local unwind
// and procedure names are async-signal-safe. The symbolizer is libdw
// (elfutils, Debian's libdw-dev): function names from the symbol tables
// and file:line from the DWARF line tables of every loaded object, with
// the separate debug files Debian installs. Rejected: Boost.Stacktrace on
// libbacktrace (it unwinds only the calling thread), frame pointers plus
// dladdr (our Release builds and most libraries omit frame pointers, and
// dladdr knows no lines), libdw's own unwinder (no cache across calls: a
// dump of 100 000 fibers would pay the CFI lookup per frame).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ucontext.h>

struct Dwfl;  // elfutils

namespace gort::detail {

// The most frames any backtrace keeps; a deeper stack is cut there.
inline constexpr int kMaxFrames = 48;

// A fiber's stack as copied while it was parked: the bytes from its saved
// stack pointer up, and where they were.
struct StackCopy {
  uintptr_t low = 0;        // the saved stack pointer (Fiber::ctx)
  std::vector<char> bytes;  // [low, low + bytes.size())
};

// Copies [sp, top) of a stack (at most `limit` bytes, from sp up) into
// `out` without any access that could fault: a page that is gone makes it
// return false instead. Safe on a stack another thread may be using; the
// caller decides whether the copy is coherent (backtrace.cpp).
bool copy_stack(uintptr_t sp, uintptr_t top, std::size_t limit, StackCopy* out);

// Address ranges [first, second), sorted and disjoint.
using AddressRanges = std::vector<std::pair<uintptr_t, uintptr_t>>;

// Unwinds a fiber suspended by Boost.Context from `copy`, whose first
// bytes are the registers the switch saved. `stacks` are the ranges of all
// fiber stacks (the slabs): the unwinder reads nothing there but the copy. Fills pcs[0..n) with return addresses, innermost
// first, and returns n (0 if nothing could be unwound). *cut is set when
// the stack had more than `max` frames or went on past the copy.
int unwind_suspended(const StackCopy& copy, const AddressRanges& stacks, uintptr_t* pcs, int max, bool* cut);

// The calling thread's own stack, from the caller of this function.
int unwind_here(uintptr_t* pcs, int max);

// From a signal handler, async-signal-safe: unwinds from the signal's
// context and writes "  #N 0xPC name+0xOFF" per frame (at most `max`)
// with write(2). Names are the symbol tables', mangled: demangling
// allocates.
void write_signal_backtrace(int fd, ucontext_t* uc, int max);

// Names and source lines of code addresses, each looked up once. Not
// thread-safe: one per dump.
class Symbolizer {
 public:
  Symbolizer();
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // One function a code address is in: the symbol's function, and the
  // functions the compiler inlined into it at that address.
  struct Call {
    std::string function;   // demangled; "??" when nothing covers the address
    std::string where;      // "file:line", or "module+0xOFFSET" without line information
    bool inlined;           // inlined into the next call out
    bool runtime_internal;  // in gort::detail or Boost.Context's switch
  };
  // The calls at one address, innermost first (the inlined ones, then the
  // symbol's own function).
  struct Frame {
    std::vector<Call> calls;
  };
  // `pc` is a return address except for the innermost frame of a signal
  // context (`exact`); a return address is looked up one byte earlier, in
  // the call instruction.
  const Frame& frame(uintptr_t pc, bool exact = false);

 private:
  Frame lookup(uintptr_t pc);
  ::Dwfl* dwfl_ = nullptr;
  std::unordered_map<uintptr_t, Frame> cache_;
};

// Appends the frames to `out` in Go's form, two lines each (the function,
// then its file:line, indented), hiding the runtime's own frames at both
// ends unless `all` (GORT_TRACEBACK=system).
void append_frames(std::string& out, Symbolizer& sym, const uintptr_t* pcs, int n, bool cut, bool all);

// "std::runtime_error" for "St13runtime_error"; the name itself when the
// demangler cannot read it (a C symbol).
std::string demangle(const char* name);

// GORT_TRACEBACK=system: show the runtime's own frames too.
bool traceback_shows_runtime();

}  // namespace gort::detail
