// backtrace.cpp: see backtrace.h.
//
// Unwinding a parked fiber while the workers run
//  * The stack of a parked fiber does not change until a worker resumes
//    it; but a waker may make it runnable and a worker resume it at any
//    moment, and then its frames change under a reader. Go stops the world
//    for a traceback. The dump does not: it copies the stack, then checks
//    that the fiber was parked, in the same wait, the whole time, and
//    unwinds only a copy that passed (a sequence-lock read: the fiber's
//    park stamp, Fiber::wait_since, is the sequence).
//  * Why the check suffices: a parked fiber's frames change only once a
//    worker resumes it, and that worker first stores kRunning in the
//    fiber's state (set_state) and then switches to it, on the same
//    thread; x86 makes one thread's stores visible in order, and the fence
//    between the copy and the second read keeps those reads in order. So
//    if the copy read a byte the resumed fiber wrote, the state read after
//    it is no longer kParked or, if the fiber parked again meanwhile, the
//    park stamp has moved (each park stores a new cycle count). Equal id,
//    state, stamp and saved stack pointer before and after: the copy is
//    the stack as it was while parked. Other threads do write into a
//    parked fiber's frames (a channel hands a value to a receiver's slot, a
//    wait queue relinks entries that live there), but only data: the
//    return addresses and saved registers the unwinder reads are the
//    fiber's own.
//  * The copy cannot fault: process_vm_readv on our own process reads
//    through the kernel, which reports a page that is not there (a guard,
//    a range given back) as an error instead of a signal. A stack below
//    its saved pointer is never read; above it every page has been used by
//    the fiber's own frames, so the copy commits nothing new.
//  * The unwinder reads the copy for every address in it and plain memory
//    (the loaded objects' call-frame tables) for every other address except
//    the stack slabs, which it may not read (live stacks, and guards that
//    fault): a frame beyond the copy ends the backtrace.
//  * Cost: a system call and a copy of the used part of the stack per
//    parked fiber, then a table lookup per frame, which libunwind caches
//    by address across fibers and dumps. Names are looked up once per
//    address per dump, and fibers whose stacks are the same print one.
#include "backtrace.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <libunwind.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

namespace gort::detail {

namespace {

// Boost.Context's x86-64 System V frame, at the saved stack pointer
// (jump_x86_64_sysv_elf_gas.S): the SSE and x87 control words, then the
// callee-saved registers, then the return address; the stack pointer
// after the switch returns is the frame's end. tools/gdb/gort.py reads
// the same layout.
constexpr std::size_t kSavedR12 = 0x08, kSavedR13 = 0x10, kSavedR14 = 0x18, kSavedR15 = 0x20, kSavedRbx = 0x28,
                      kSavedRbp = 0x30, kSavedRip = 0x38, kSavedFrameSize = 0x40;

uint64_t word_at(const StackCopy& c, std::size_t offset) {
  uint64_t v;
  std::memcpy(&v, c.bytes.data() + offset, sizeof v);
  return v;
}

// What the accessors below see: the copy, and every stack's range (the
// slabs), which only the copy may stand in for.
struct RemoteArg {
  const StackCopy* copy;
  const AddressRanges* stacks;
};

// Whether addr lies in one of the sorted, disjoint ranges.
bool in_ranges(const AddressRanges& ranges, uintptr_t addr) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), addr,
                             [](uintptr_t a, const std::pair<uintptr_t, uintptr_t>& r) { return a < r.first; });
  return it != ranges.begin() && addr < std::prev(it)->second;
}

// Reads one word the unwinder asks for: from the copy, from loaded code
// and data directly, never from the live part of the fiber's stack.
// Uninstrumented: the direct reads are of the unwind tables of objects the
// sanitizers did not build.
__attribute__((no_sanitize("address", "thread"))) int access_mem(unw_addr_space_t, unw_word_t addr,
                                                                  unw_word_t* val, int write, void* arg) {
  if (write) return -UNW_EINVAL;
  const auto* a = static_cast<const RemoteArg*>(arg);
  const StackCopy& c = *a->copy;
  uintptr_t end = c.low + c.bytes.size();
  if (addr >= c.low && addr + sizeof(unw_word_t) <= end) {
    std::memcpy(val, c.bytes.data() + (addr - c.low), sizeof *val);
    return 0;
  }
  // Any other stack, or this one beyond the copy, is live (and a guard
  // faults): only a frame the copy does not hold could lead there, and the
  // backtrace ends instead.
  if (in_ranges(*a->stacks, addr) || in_ranges(*a->stacks, addr + sizeof(unw_word_t) - 1)) return -UNW_EINVAL;
  __builtin_memcpy(val, reinterpret_cast<const void*>(addr), sizeof *val);  // may be unaligned (a table entry)
  return 0;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* val, int write, void* arg) {
  if (write) return -UNW_EREADONLYREG;
  const StackCopy& c = *static_cast<const RemoteArg*>(arg)->copy;
  switch (reg) {
    case UNW_X86_64_RIP: *val = word_at(c, kSavedRip); return 0;
    case UNW_X86_64_RSP: *val = c.low + kSavedFrameSize; return 0;
    case UNW_X86_64_RBP: *val = word_at(c, kSavedRbp); return 0;
    case UNW_X86_64_RBX: *val = word_at(c, kSavedRbx); return 0;
    case UNW_X86_64_R12: *val = word_at(c, kSavedR12); return 0;
    case UNW_X86_64_R13: *val = word_at(c, kSavedR13); return 0;
    case UNW_X86_64_R14: *val = word_at(c, kSavedR14); return 0;
    case UNW_X86_64_R15: *val = word_at(c, kSavedR15); return 0;
    default: *val = 0; return 0;  // caller-saved: dead across the switch
  }
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }
int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }

// An address space like the local one (its lookup of the unwind tables
// in the loaded objects, through dl_iterate_phdr) whose memory and
// registers are a stack copy's. Made once and kept: its cache of parsed
// frame descriptions is what makes the next dump cheap.
unw_addr_space_t copy_address_space() {
  static unw_addr_space_t space = [] {
    unw_accessors_t acc = *unw_get_accessors(unw_local_addr_space);
    acc.access_mem = access_mem;
    acc.access_reg = access_reg;
    acc.access_fpreg = access_fpreg;
    acc.resume = resume;
    unw_addr_space_t as = unw_create_addr_space(&acc, 0);
    if (as != nullptr) unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
    return as;
  }();
  return space;
}


// The runtime's own frames, which a dump hides at both ends of a stack by
// default, as Go hides runtime.gopark: the switch, everything in
// gort::detail (the scheduler, parking, a fiber's entry), the main fiber's
// entry (gort::run's Body::call), and how a fiber's task is called
// (spawn's std::invoke / std::apply). The name's scope is what counts, not
// its arguments or template arguments: before the first '(' or '<' (a
// leading return type may precede it).
bool is_runtime_internal(const std::string& f) {
  std::string scope = f.substr(0, f.find_first_of("(<"));
  if (scope == "jump_fcontext" || scope == "ontop_fcontext" || scope == "make_fcontext" || scope == "gort::run")
    return true;
  for (const char* prefix :
       {"gort::detail::", "boost::context::", "std::__invoke", "std::invoke", "std::__apply_impl", "std::apply"}) {
    std::size_t at = scope.find(prefix);
    if (at == 0 || (at != std::string::npos && scope[at - 1] == ' ')) return true;
  }
  return false;
}

// Code inlined from the runtime's own sources (runtime/src, where this
// file is): DWARF names an inlined static function by its short name
// alone ("block"), which says nothing of where it belongs.
bool in_runtime_sources(const std::string& where) {
  static const std::string dir = [] {
    std::string f = __FILE__;
    return f.substr(0, f.rfind('/') + 1);
  }();
  return where.starts_with(dir);
}

}  // namespace

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

bool copy_stack(uintptr_t sp, uintptr_t top, std::size_t limit, StackCopy* out) {
  if (sp >= top || top - sp < kSavedFrameSize) return false;
  std::size_t n = std::min<std::size_t>(top - sp, limit);
  out->low = sp;
  out->bytes.resize(n);
  iovec local{out->bytes.data(), n};
  iovec remote{reinterpret_cast<void*>(sp), n};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == ssize_t(n);
}

int unwind_suspended(const StackCopy& copy, const AddressRanges& stacks, uintptr_t* pcs, int max, bool* cut) {
  *cut = false;
  unw_addr_space_t as = copy_address_space();
  if (as == nullptr || copy.bytes.size() < kSavedFrameSize) return 0;
  RemoteArg arg{&copy, &stacks};
  unw_cursor_t cursor;
  if (unw_init_remote(&cursor, as, &arg) != 0) return 0;
  int n = 0;
  while (n < max) {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    pcs[n++] = uintptr_t(ip);
    int step = unw_step(&cursor);
    if (step == 0) return n;  // the outermost frame
    if (step < 0) {
      *cut = true;  // ran past the copy, or a frame without unwind information
      return n;
    }
  }
  *cut = n == max;
  return n;
}

int unwind_here(uintptr_t* pcs, int max) {
  // glibc's getcontext, not libunwind's: that one lives in libunwind.so,
  // which a direct link would put ahead of libgcc_s in the symbol search
  // and so make the unwinder of every C++ exception (libunwind.so defines
  // _Unwind_RaiseException too). On x86-64 unw_context_t is a ucontext_t.
  ucontext_t context;
  unw_cursor_t cursor;
  if (getcontext(&context) != 0 || unw_init_local(&cursor, &context) != 0) return 0;
  int n = 0;
  while (n < max && unw_step(&cursor) > 0) {  // the first step leaves this function
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    pcs[n++] = uintptr_t(ip);
  }
  return n;
}

void write_signal_backtrace(int fd, ucontext_t* uc, int max) {
  unw_cursor_t cursor;
  if (unw_init_local2(&cursor, reinterpret_cast<unw_context_t*>(uc), UNW_INIT_SIGNAL_FRAME) != 0) return;
  for (int i = 0;; ++i) {
    char line[320];
    unw_word_t ip = 0, offset = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) return;
    if (i == max) {
      [[maybe_unused]] ssize_t rc = write(fd, "  ...\n", 6);
      return;
    }
    char name[256];
    if (unw_get_proc_name(&cursor, name, sizeof name, &offset) != 0) std::strcpy(name, "??");
    // snprintf of integers and strings is async-signal-safe in glibc in
    // practice (no allocation, no locale lookup for %s/%x), as backtrace_symbols_fd relies on too.
    int len = std::snprintf(line, sizeof line, "  #%d 0x%016" PRIxPTR " %s+0x%" PRIxPTR "\n", i, uintptr_t(ip), name,
                            uintptr_t(offset));
    if (len > 0) {
      [[maybe_unused]] ssize_t rc = write(fd, line, std::min<std::size_t>(std::size_t(len), sizeof line - 1));
    }
    if (unw_step(&cursor) <= 0) return;
  }
}

// ---- Symbolizer ----

namespace {
char* g_debuginfo_path = nullptr;  // libdw's default search: next to the object, /usr/lib/debug
const Dwfl_Callbacks kDwflCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = &g_debuginfo_path,
};
}  // namespace

Symbolizer::Symbolizer() {
  dwfl_ = dwfl_begin(&kDwflCallbacks);
  if (dwfl_ == nullptr) return;
  dwfl_report_begin(dwfl_);
  if (dwfl_linux_proc_report(dwfl_, getpid()) != 0) {
    dwfl_end(dwfl_);
    dwfl_ = nullptr;
    return;
  }
  dwfl_report_end(dwfl_, nullptr, nullptr);
}

Symbolizer::~Symbolizer() {
  if (dwfl_ != nullptr) dwfl_end(dwfl_);
}

const Symbolizer::Frame& Symbolizer::frame(uintptr_t pc, bool exact) {
  uintptr_t addr = exact ? pc : pc - 1;
  auto it = cache_.find(addr);
  if (it == cache_.end()) it = cache_.emplace(addr, lookup(addr)).first;
  return it->second;
}

namespace {

// The compile unit that holds `addr`. libdw finds it through
// .debug_aranges, which clang does not emit by default; without them,
// each unit's ranges are asked in turn (once per address: the Symbolizer
// caches what it found).
Dwarf_Die* unit_of(Dwfl_Module* m, uintptr_t addr, Dwarf_Addr* bias) {
  if (Dwarf_Die* cu = dwfl_module_addrdie(m, addr, bias)) return cu;
  for (Dwarf_Die* cu = dwfl_module_nextcu(m, nullptr, bias); cu != nullptr; cu = dwfl_module_nextcu(m, cu, bias))
    if (dwarf_haspc(cu, addr - *bias) > 0) return cu;
  return nullptr;
}

// A function's name as the dump prints it: its linkage name demangled
// (qualified, with its parameter types), else its plain DWARF name (C,
// main). Both follow DW_AT_abstract_origin and DW_AT_specification
// (dwarf_attr_integrate), as an inlined copy or an out-of-line method
// names itself only through them.
std::string die_function_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  const char* linkage = nullptr;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) != nullptr ||
      dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr) != nullptr)
    linkage = dwarf_formstring(&attr);
  if (linkage != nullptr) return demangle(linkage);
  const char* name = dwarf_diename(die);
  return name != nullptr ? name : "??";
}

// Appends the calls inlined at `pc` (an address in compile unit `cu`,
// without the module's bias), innermost first, from the unit's scopes:
// each inlined subroutine is a call whose line is where we are in it
// (`line` for the innermost), and whose call site (DW_AT_call_file/line)
// is where we are in the next function out.
// Returns where we are in the function the symbol names (the out-of-line
// one, which the caller appends under its symbol's name: qualified, where
// DWARF gives a static function or a lambda only its short name).
std::string inlined_calls(Dwarf_Die* cu, uint64_t pc, std::string line, Symbolizer::Frame* out) {
  Dwarf_Die* scopes = nullptr;
  int n = dwarf_getscopes(cu, pc, &scopes);
  if (n <= 0) return line;
  std::unique_ptr<Dwarf_Die, void (*)(void*)> owned(scopes, std::free);
  Dwarf_Files* files = nullptr;
  std::size_t nfiles = 0;
  if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0) files = nullptr;
  for (int i = 0; i < n; ++i) {
    int tag = dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_subprogram) break;
    if (tag != DW_TAG_inlined_subroutine) continue;  // a lexical block
    std::string function = die_function_name(&scopes[i]);
    bool internal = is_runtime_internal(function) || in_runtime_sources(line);
    out->calls.push_back(Symbolizer::Call{std::move(function), line, true, internal});
    Dwarf_Attribute attr;
    Dwarf_Word call_file = 0, call_line = 0;
    const char* file = nullptr;
    if (files != nullptr && dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &call_file) == 0 &&
        call_file < nfiles)
      file = dwarf_filesrc(files, call_file, nullptr, nullptr);
    if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &call_line) != 0) call_line = 0;
    line = std::string(file != nullptr ? file : "??") + ":" + std::to_string(call_line);
  }
  return line;
}

}  // namespace

Symbolizer::Frame Symbolizer::lookup(uintptr_t addr) {
  Frame f;
  char hex[64];
  Dwfl_Module* m = dwfl_ != nullptr ? dwfl_addrmodule(dwfl_, addr) : nullptr;
  if (m == nullptr) {
    std::snprintf(hex, sizeof hex, "0x%" PRIxPTR, addr);
    f.calls.push_back(Call{"??", hex, false, false});
    return f;
  }
  int line = 0;
  const char* file = nullptr;
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = unit_of(m, addr, &bias);
  if (cu != nullptr)
    if (Dwarf_Line* l = dwarf_getsrc_die(cu, addr - bias)) {
      file = dwarf_linesrc(l, nullptr, nullptr);
      if (dwarf_lineno(l, &line) != 0) line = 0;
    }
  std::string where;
  if (file != nullptr) {
    where = std::string(file) + ":" + std::to_string(line);
  } else {
    Dwarf_Addr start = 0;
    const char* module = dwfl_module_info(m, nullptr, &start, nullptr, nullptr, nullptr, nullptr, nullptr);
    std::snprintf(hex, sizeof hex, "+0x%" PRIxPTR, uintptr_t(addr - start));
    where = std::string(module != nullptr ? module : "??") + hex;
  }
  if (file != nullptr) where = inlined_calls(cu, addr - bias, std::move(where), &f);
  GElf_Off offset = 0;
  GElf_Sym sym;
  const char* name = dwfl_module_addrinfo(m, addr, &offset, &sym, nullptr, nullptr, nullptr);
  std::string function = name != nullptr ? demangle(name) : "??";
  bool internal = is_runtime_internal(function);
  // spawn's Task<F, Args...>::run calls the fiber's function. When the
  // compiler inlined that function without recording the inlining, the
  // line here is in it: show the frame as the function (its type names
  // the lambda), not as the runtime's. A line in the standard library's
  // invoke instead means the function has a frame of its own.
  constexpr std::string_view kTask = "gort::detail::Task<", kRun = ">::run(void*)";
  if (function.starts_with(kTask) && function.ends_with(kRun) && where.find("/c++/") == std::string::npos) {
    function = function.substr(kTask.size(), function.size() - kTask.size() - kRun.size());
    internal = false;
  }
  f.calls.push_back(Call{std::move(function), std::move(where), false, internal});
  return f;
}

void append_frames(std::string& out, Symbolizer& sym, const uintptr_t* pcs, int n, bool cut, bool all) {
  std::vector<const Symbolizer::Call*> calls;
  for (int i = 0; i < n; ++i)
    for (const Symbolizer::Call& c : sym.frame(pcs[i]).calls) calls.push_back(&c);
  std::size_t first = 0, last = calls.size();
  if (!all) {
    while (first < last && calls[first]->runtime_internal) ++first;
    while (last > first && calls[last - 1]->runtime_internal) --last;
    if (first == last) first = 0, last = calls.size();  // nothing but the runtime: show it
  }
  for (std::size_t i = first; i < last; ++i) {
    out += "    ";
    out += calls[i]->function;
    out += calls[i]->inlined ? " (inlined)\n        " : "\n        ";
    out += calls[i]->where;
    out += '\n';
  }
  if (cut && last == calls.size()) out += "    ...\n";
}

bool traceback_shows_runtime() {
  const char* v = std::getenv("GORT_TRACEBACK");
  return v != nullptr && std::strcmp(v, "system") == 0;
}

}  // namespace gort::detail
