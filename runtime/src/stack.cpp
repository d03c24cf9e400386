// stack.cpp: see stack.h for the design.
#include "stack.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "platform.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace gort::detail {

namespace {

GuardMode probe_guard_mode() {
  const char* env = std::getenv("GORT_GUARD");
  if (env && std::strcmp(env, "mprotect") == 0) return GuardMode::kMprotect;
  // Try the cheap guard on a scratch mapping; EINVAL means an older kernel.
  std::size_t page = page_size();
  void* p = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return GuardMode::kMprotect;
  bool ok = madvise(p, page, MADV_GUARD_INSTALL) == 0;
  munmap(p, 2 * page);
  return ok ? GuardMode::kGuardInstall : GuardMode::kMprotect;
}

}  // namespace

std::size_t round_stack_size(std::size_t usable_size) {
  std::size_t page = page_size();
  usable_size = std::clamp(usable_size, kMinStackSize, kMaxStackSize);
  return (usable_size + page - 1) / page * page;
}

namespace {

// Under vm.overcommit_memory=2 the kernel charges a private writable
// mapping's whole size against the commit limit, MAP_NORESERVE or not: there
// a reservation holds one slab, as the stacks in use need anyway.
bool strict_overcommit() {
  FILE* f = std::fopen("/proc/sys/vm/overcommit_memory", "r");
  if (f == nullptr) return false;
  int mode = 0;
  bool strict = std::fscanf(f, "%d", &mode) == 1 && mode == 2;
  std::fclose(f);
  return strict;
}

}  // namespace

StackPool::StackPool()
    : mode_(probe_guard_mode()),
      one_slab_per_reservation_(strict_overcommit()),
      pagemap_fd_(open_pagemap_scan()),
      pagemap_forks_(forks()),
      slabs_(new Slab[kMaxSlabs]) {}

StackPool::~StackPool() {
  for (const Reservation& r : reservations_) munmap(r.base, r.bytes);
  if (pagemap_fd_ >= 0) close(pagemap_fd_);
  delete[] slabs_;
}

std::size_t StackPool::slab_count() const { return std::size_t(nslabs_.load(std::memory_order_acquire)); }

std::size_t StackPool::carved() const {
  std::size_t n = 0;
  for (std::size_t i = 0, slabs = slab_count(); i < slabs; ++i) n += std::size_t(slabs_[i].count);
  return n;
}

uint64_t StackPool::committed_bytes() const {
  const std::size_t page = page_size();
  constexpr std::size_t kChunkPages = 64 * 1024;  // 256 MiB of span per call with 4 KiB pages
  std::vector<unsigned char> resident(kChunkPages);
  uint64_t pages = 0;
  for (std::size_t i = 0, slabs = slab_count(); i < slabs; ++i) {
    char* base = slabs_[i].base;
    std::size_t total = slabs_[i].stack_size * std::size_t(slabs_[i].count) / page;
    for (std::size_t done = 0; done < total;) {
      std::size_t n = std::min(kChunkPages, total - done);
      if (mincore(base + done * page, n * page, resident.data()) == 0)
        for (std::size_t k = 0; k < n; ++k) pages += resident[k] & 1;
      done += n;
    }
  }
  return pages * page;
}

int64_t StackPool::in_use() const {
  std::lock_guard lock(mu_);
  int64_t n = in_use_.load(std::memory_order_relaxed);
  for (const StackCache* c : caches_) n += c->net();
  return n;
}

void StackPool::add_cache(const StackCache* c) {
  std::lock_guard lock(mu_);
  caches_.push_back(c);
}

// The cache's count stays in the total: its stacks still in use are
// returned to other caches or the pool, whose counts fall for them.
void StackPool::remove_cache(const StackCache* c, int64_t net) {
  std::lock_guard lock(mu_);
  caches_.erase(std::find(caches_.begin(), caches_.end(), c));
  in_use_.fetch_add(net, std::memory_order_relaxed);
}

std::size_t StackPool::cold_count() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const FreeList& list : free_) n += list.cold.size();
  return n;
}

// Called with mu_ held.
StackPool::FreeList& StackPool::free_list(std::size_t stack_size) {
  for (FreeList& list : free_)
    if (list.stack_size == stack_size) return list;
  FreeList fresh;
  fresh.stack_size = stack_size;
  return free_.emplace_back(std::move(fresh));
}

// Called with mu_ held. Warm stacks first (newest first: the likeliest to
// have their top page still committed), then cold ones.
bool StackPool::take_one(FreeList& list, Stack* out) {
  if (!list.warm.empty()) {
    *out = list.warm.back();
    list.warm.pop_back();
    list.low_water = std::min(list.low_water, list.warm.size());
    return true;
  }
  if (list.cold.empty()) return false;
  *out = Stack{list.cold.back(), list.stack_size, kGuardBytes, false};
  list.cold.pop_back();
  return true;
}

// One call for the whole slab's guards where the kernel takes a batch.
bool StackPool::install_guards(char* base, std::size_t stack_size) {
  if (mode_ == GuardMode::kMprotect) {
    for (int i = 0; i < kStacksPerSlab; ++i) {
      count_syscalls(1);
      if (mprotect(base + std::size_t(i) * stack_size, kGuardBytes, PROT_NONE) != 0) return false;
    }
    return true;
  }
  MadviseBatch guards(MADV_GUARD_INSTALL);
  for (int i = 0; i < kStacksPerSlab; ++i) guards.add(base + std::size_t(i) * stack_size, kGuardBytes);
  bool ok = guards.flush();
  count_syscalls(guards.syscalls());
  return ok;
}

// Every fiber touches its stack's top page (its first frames go there):
// commit them all in one call rather than one page fault per fiber.
// Only where that is one call; failure (memory pressure) is harmless.
void StackPool::populate_tops(char* base, std::size_t stack_size) {
  if (!MadviseBatch::batched()) return;
  std::size_t page = page_size();
  MadviseBatch populate(MADV_POPULATE_WRITE);
  for (int i = 0; i < kStacksPerSlab; ++i) populate.add(base + std::size_t(i + 1) * stack_size - page, page);
  populate.flush();
  count_syscalls(populate.syscalls());
}

// Maps the shared zero page under every stack's sentinel page (went_deep),
// so that the first check of a fresh stack takes no page fault. Only where
// that is one call.
void StackPool::populate_sentinels(char* base, std::size_t stack_size) {
  if (pagemap_fd_ >= 0) return;  // fresh stacks are checked by a page-table scan (trim)
  if (!MadviseBatch::batched() || stack_size < kGuardBytes + kRetainedBytes + page_size()) return;
  std::size_t page = page_size();
  MadviseBatch populate(MADV_POPULATE_READ);
  for (int i = 0; i < kStacksPerSlab; ++i)
    populate.add(base + std::size_t(i + 1) * stack_size - kRetainedBytes - page, page);
  populate.flush();
  count_syscalls(populate.syscalls());
}

// Without mu_: a worker that finds the pool empty while another carves
// carves a slab of its own rather than wait for the lock, so a burst on
// several workers faults its stacks in on several cores. Returns one of the
// new stacks (the caller's) and lists the rest as warm.
Stack StackPool::carve_slab(std::size_t stack_size) {
  // relaxed: a hint that spares a reservation once the table is full; the
  // check that counts is made again under mu_.
  if (nslabs_.load(std::memory_order_relaxed) >= kMaxSlabs) throw std::bad_alloc();
  std::size_t bytes = stack_size * kStacksPerSlab;
  char* base = slab_space(stack_size, bytes);
  if (!install_guards(base, stack_size)) {
    // Either the kernel is out of mappings (mprotect mode: ENOMEM) or out of
    // memory for page tables. Undo what was installed (a split mapping
    // merges back) and hand the range back if it is still the reservation's
    // last cut, for a later try.
    remove_guards(base, bytes);
    std::lock_guard lock(mu_);
    FreeList& list = free_list(stack_size);
    if (list.reserved.next == base + bytes) list.reserved.next = base;
    throw std::bad_alloc();
  }
  populate_tops(base, stack_size);
  populate_sentinels(base, stack_size);
  std::lock_guard lock(mu_);
  int index = nslabs_.load(std::memory_order_relaxed);
  // Others carved the last entries meanwhile: the range stays reserved,
  // unused (never unmapped alone: it lies inside a reservation).
  if (index >= kMaxSlabs) throw std::bad_alloc();
  // All or none: a range inserted at a deque's end allocates its blocks
  // before it moves anything, so a throw here changes nothing.
  std::array<Stack, kStacksPerSlab - 1> carved;
  for (int i = kStacksPerSlab - 1; i >= 1; --i)
    carved[std::size_t(kStacksPerSlab - 1 - i)] =
        Stack{base + std::size_t(i) * stack_size, stack_size, kGuardBytes, false};
  std::deque<Stack>& warm = free_list(stack_size).warm;
  warm.insert(warm.end(), carved.begin(), carved.end());
  slabs_[index] = Slab{base, stack_size, kStacksPerSlab};
  // release: pairs with slab_count()'s acquire load.
  nslabs_.store(index + 1, std::memory_order_release);
  note_acquired();
  return Stack{base, stack_size, kGuardBytes, false};
}

// A slab's address range, cut from the reservation of its stack size. mmap
// takes the address space's lock for writing, and a writer waiting behind
// one worker's populate calls holds up every other worker's (the kernel
// then carves for one worker at a time), so a reservation holds many slabs:
// twice as many as the size's previous one, up to kSlabsPerReservation and
// kMaxReservationBytes, so that a stack size used for a few fibers reserves
// little.
char* StackPool::slab_space(std::size_t stack_size, std::size_t bytes) {
  std::size_t slabs;
  {
    std::lock_guard lock(mu_);
    FreeList& list = free_list(stack_size);
    if (list.reserved.room() < bytes && list.spare.room() > 0) {
      list.reserved = list.spare;  // what a lost race left: see below
      list.spare = Range{};
    }
    if (list.reserved.room() >= bytes) {
      char* p = list.reserved.next;
      list.reserved.next += bytes;
      return p;
    }
    slabs = list.next_reservation_slabs;
  }
  if (one_slab_per_reservation_) slabs = 1;
  slabs = std::clamp<std::size_t>(std::min(slabs, kMaxReservationBytes / bytes), 1, kSlabsPerReservation);
  const int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK;
  count_syscalls(1);
  void* p = mmap(nullptr, bytes * slabs, prot, flags, -1, 0);
  if (p == MAP_FAILED && slabs > 1) {  // short of address space: one slab will do
    slabs = 1;
    count_syscalls(1);
    p = mmap(nullptr, bytes, prot, flags, -1, 0);
  }
  if (p == MAP_FAILED) throw std::bad_alloc();
  char* base = static_cast<char*>(p);
  std::size_t keep = bytes * slabs;  // what stays mapped of ours
  {
    std::lock_guard lock(mu_);
    FreeList& list = free_list(stack_size);
    list.next_reservation_slabs = std::min(2 * slabs, kSlabsPerReservation);
    // Another worker may have reserved meanwhile: then the rest of ours
    // waits as the spare, taken when theirs runs out (an mmap saved, and
    // no munmap, which takes the same lock); if a spare is already
    // waiting, the rest, which nobody else has seen, goes back.
    bool theirs_has_room = list.reserved.room() >= bytes;
    bool to_spare = theirs_has_room && slabs > 1 && list.spare.room() == 0;
    if (theirs_has_room && !to_spare) keep = bytes;
    try {
      reservations_.push_back(Reservation{base, keep});
    } catch (...) {
      munmap(base, bytes * slabs);
      throw;
    }
    if (to_spare)
      list.spare = Range{base + bytes, base + keep};
    else if (!theirs_has_room)
      list.reserved = Range{base + bytes, base + keep};
  }
  if (keep < bytes * slabs) {
    count_syscalls(1);
    munmap(base + keep, bytes * slabs - keep);
  }
  return base;
}

// Undoes install_guards over a slab whose guards could not all go in.
void StackPool::remove_guards(char* base, std::size_t bytes) {
  count_syscalls(1);
  if (mode_ == GuardMode::kMprotect)
    mprotect(base, bytes, PROT_READ | PROT_WRITE);
  else
    madvise(base, bytes, MADV_GUARD_REMOVE);
}

Stack StackPool::allocate(std::size_t usable_size) {
  std::size_t stack_size = round_stack_size(usable_size) + kGuardBytes;
  {
    std::lock_guard lock(mu_);
    Stack s;
    if (take_one(free_list(stack_size), &s)) {
      note_acquired();
      return s;
    }
  }
  return carve_slab(stack_size);
}

void StackPool::release(Stack s) {
  trim(&s, 1);
  note_returned();
  std::lock_guard lock(mu_);
  free_list(s.size).warm.push_back(s);
}

void StackPool::release_batch(std::vector<Stack>& in) {
  trim(in.data(), in.size());
  std::lock_guard lock(mu_);
  // The stacks of a batch are almost always of one size: look its list up
  // once per run of equal sizes, not once per stack.
  FreeList* list = nullptr;
  for (Stack& s : in) {
    if (list == nullptr || list->stack_size != s.size) list = &free_list(s.size);
    list->warm.push_back(s);
  }
  in.clear();
}

bool StackPool::take_batch(std::size_t stack_size, std::vector<Stack>& out, std::size_t max) {
  std::lock_guard lock(mu_);
  FreeList& list = free_list(stack_size);
  Stack s;
  while (max-- > 0 && take_one(list, &s)) out.push_back(s);
  return !out.empty();
}

namespace {

char* deep_end(const Stack& s) { return s.top() - kRetainedBytes; }
char* sentinel_page(const Stack& s) { return deep_end(s) - page_size(); }

// Did the stack's fiber go below the retained top? The page just below it
// (the sentinel page) reads as zeros until a frame is written there. The
// runtime maps the kernel's shared zero page under it before the first
// read (populate_sentinels when a slab is carved where there is no page-table
// scan, else trim's batched populate), and a trim that gives the deep pages
// back unmaps it again. Reading the zero page costs no memory, and every
// stack's sentinel reads the same physical page, so the read stays in the
// cache. A frame larger than a page that leaves the sentinel page untouched
// is missed; the scavenger still gives the whole stack back once it goes
// unused.
//
// The read is most of what a trim costs per stack, and almost every page
// it reads is all zeros, so it is built for that case: the whole page is
// OR-ed into four independent accumulators and tested once at the end (no
// early exit, no reduction per step), with 32-byte loads where the CPU has
// them. What remains is mostly the TLB miss on the sentinel's address.
// Not instrumented: the dead fiber's frames may still be poisoned (ASan),
// and their writes were made on another thread before the stack was freed.
template <class Vec>
__attribute__((always_inline, no_sanitize("address", "thread"))) inline bool any_nonzero(const char* page) {
  auto* v = reinterpret_cast<const Vec*>(page);
  const std::size_t n = page_size() / sizeof(Vec);
  Vec a = v[0], b = v[1], c = v[2], d = v[3];
  for (std::size_t i = 4; i < n; i += 4) {
    a |= v[i];
    b |= v[i + 1];
    c |= v[i + 2];
    d |= v[i + 3];
  }
  a |= b | c | d;
  uint64_t any = 0;
  for (std::size_t k = 0; k < sizeof(Vec) / sizeof(uint64_t); ++k) any |= a[k];
  return any != 0;
}

using Vec16 = uint64_t __attribute__((vector_size(16)));
using Vec32 = uint64_t __attribute__((vector_size(32)));

__attribute__((noinline, no_sanitize("address", "thread"))) bool any_nonzero_16(const char* page) {
  return any_nonzero<Vec16>(page);
}
__attribute__((noinline, target("avx2"), no_sanitize("address", "thread"))) bool any_nonzero_32(const char* page) {
  return any_nonzero<Vec32>(page);
}

bool went_deep(const Stack& s) {
  // Asked once: the CPU does not change under us. (__builtin_cpu_init
  // first: this may run before libgcc's own constructor has.)
  static const bool have_avx2 = (__builtin_cpu_init(), __builtin_cpu_supports("avx2"));
  const char* sentinel = sentinel_page(s);
  return have_avx2 ? any_nonzero_32(sentinel) : any_nonzero_16(sentinel);
}

}  // namespace

// Which of a run of freed stacks went deep, asked of the kernel's page
// tables: PAGEMAP_SCAN (/proc/self/pagemap, Linux >= 6.7) reports the runs
// of pages in a range that hold memory of their own, in one call for the
// whole range, at a cost of a nanosecond or two per page of it. It is asked
// about stacks whose sentinels are not mapped (Stack::Sentinel::kFresh
// since they were carved, or since their deep pages or the whole stack went
// back, and kScanned), at most kScansBeforeMapping times each, and only for
// runs of them that lie close together: a fan-out's, carved together and
// freed together. The sentinel pages of such a run are not mapped at those
// checks (populate_sentinels is skipped where the scan works), a page-table
// entry and a kernel call less per stack carved, which is all a fiber that
// runs once pays for. Every other check maps the sentinel to the zero page
// first, if it is not yet, and reads it (went_deep): in a steady state that
// read costs less than a scan, which also walks every page between the
// sentinels; kScansBeforeMapping says when to stop paying for scans.
namespace {

struct PageRegion {  // struct page_region, <linux/fs.h>
  uint64_t start, end, categories;
};
struct PmScanArg {  // struct pm_scan_arg, <linux/fs.h>
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr uint64_t kPageIsPresent = 1 << 3;
constexpr uint64_t kPageIsSwapped = 1 << 4;
constexpr uint64_t kPageIsPfnZero = 1 << 5;

// Calls found(begin, end) for every run of pages in [begin, end) that hold
// memory of their own (present and not the zero page, or swapped out; the
// guards' markers count as swapped too, outside any deep range), in address
// order, with `regions` as the kernel's output buffer (its size bounds the
// runs per call); adds the calls made to *calls. False if the kernel
// refused (the caller then reads sentinels).
template <class Found>
bool scan_private_pages(int fd, char* begin, char* end, std::vector<PageRegion>& regions, int* calls, Found found) {
  for (char* at = begin; at < end;) {
    PmScanArg arg{};
    arg.size = sizeof arg;
    arg.start = reinterpret_cast<uintptr_t>(at);
    arg.end = reinterpret_cast<uintptr_t>(end);
    arg.vec = reinterpret_cast<uintptr_t>(regions.data());
    arg.vec_len = regions.size();
    // Present or swapped, and (inverted) not the zero page.
    arg.category_anyof_mask = kPageIsPresent | kPageIsSwapped;
    arg.category_mask = kPageIsPfnZero;
    arg.category_inverted = kPageIsPfnZero;
    arg.return_mask = kPageIsPresent | kPageIsSwapped;
    long n = ioctl(fd, kPagemapScan, &arg);
    ++*calls;
    if (n < 0) return false;
    for (long i = 0; i < n; ++i)
      found(reinterpret_cast<char*>(regions[std::size_t(i)].start),
            reinterpret_cast<char*>(regions[std::size_t(i)].end));
    // The kernel stops at walk_end when the buffer is full.
    if (arg.walk_end <= arg.start) return false;
    at = reinterpret_cast<char*>(arg.walk_end);
  }
  return true;
}

}  // namespace

namespace {

// Forks this process has been through, as a child: an open pagemap keeps
// describing its opener, so a StackPool scans only in the process that
// opened it. Bumped by a pthread_atfork child handler (registered with the
// first pool), which runs in the child alone before anything else can.
std::atomic<uint32_t> forks_in_child{0};

}  // namespace

uint32_t StackPool::forks() {
  static const bool registered =
      pthread_atfork(nullptr, nullptr, [] { forks_in_child.fetch_add(1, std::memory_order_relaxed); }) == 0;
  (void)registered;
  // relaxed: read and written by the process's own threads, the write in
  // the child before it runs anything else.
  return forks_in_child.load(std::memory_order_relaxed);
}

int StackPool::open_pagemap_scan() {
  if (const char* env = std::getenv("GORT_STACK_SCAN"); env && std::strcmp(env, "0") == 0) return -1;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  // Probe on a page of our own: an older kernel answers ENOTTY or EINVAL.
  static char probe[1];
  char* page = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(probe) & ~(page_size() - 1));
  std::vector<PageRegion> regions(1);
  int calls = 0;
  if (!scan_private_pages(fd, page, page + page_size(), regions, &calls, [](char*, char*) {})) {
    close(fd);
    return -1;
  }
  return fd;
}

// Freed stacks further apart than kScanMaxGapStacks stacks are scanned
// apart: at that gap, walking the pages between two of them costs about
// what mapping the sentinel the scan spares does. A run of fewer than
// kScanMinRun is checked by its sentinels.
constexpr std::size_t kScanMaxGapStacks = 4;
constexpr std::size_t kScanMinRun = 4;

void StackPool::scan_unmapped(std::vector<Stack*>& stacks, std::vector<Stack*>& deep, std::vector<Stack*>& unscanned) {
  std::sort(stacks.begin(), stacks.end(), [](const Stack* a, const Stack* b) { return a->base < b->base; });
  std::vector<PageRegion> regions;
  for (std::size_t first = 0; first < stacks.size();) {
    std::size_t last = first;
    while (last + 1 < stacks.size() &&
           stacks[last + 1]->base <= stacks[last]->top() + kScanMaxGapStacks * stacks[last]->size)
      ++last;
    bool scanned = false;
    if (last + 1 - first >= kScanMinRun) {
      // About two runs of pages per stack of the span (its guard, its top
      // pages), so that a trim's scan is one call or a few.
      std::size_t span = std::size_t(stacks[last]->top() - stacks[first]->base) / stacks[first]->size;
      regions.resize(std::min<std::size_t>(2 * span + 16, 4096));
      std::size_t listed = deep.size();
      std::size_t k = first;  // regions and stacks both come in address order: one pass over each
      int calls = 0;
      scanned = scan_private_pages(pagemap_fd_, stacks[first]->usable_bottom(), deep_end(*stacks[last]), regions,
                                   &calls, [&](char* lo, char* hi) {
                                     while (k <= last && deep_end(*stacks[k]) <= lo) ++k;
                                     for (std::size_t j = k; j <= last && stacks[j]->usable_bottom() < hi; ++j)
                                       if (deep.size() == listed || deep.back() != stacks[j]) deep.push_back(stacks[j]);
                                   });
      count_syscalls(calls);
      if (scanned) {
        for (std::size_t j = first; j <= last; ++j) {
          stacks[j]->sentinel = Stack::Sentinel::kScanned;
          ++stacks[j]->scans;
        }
      } else {
        deep.resize(listed);  // refused midway: the sentinels tell
      }
    }
    if (!scanned)
      unscanned.insert(unscanned.end(), stacks.begin() + std::ptrdiff_t(first),
                       stacks.begin() + std::ptrdiff_t(last + 1));
    first = last + 1;
  }
}

// The deep ranges found go back in one batched call. Rejected: mincore over
// the freed stacks' slabs, which costs per page of the span, stacks in use
// included, and dominated a fan-out (PAGEMAP_SCAN costs about a hundredth
// of it per page).
void StackPool::trim(Stack* stacks, std::size_t n) {
  MadviseBatch dontneed(MADV_DONTNEED);
  std::vector<Stack*> unmapped, to_read, deep;
  for (std::size_t i = 0; i < n; ++i) {
    Stack& s = stacks[i];
    if (s.dirty && deep_end(s) > s.usable_bottom()) {
      if (pagemap_fd_ < 0) {
        if (went_deep(s)) dontneed.add(s.usable_bottom(), std::size_t(deep_end(s) - s.usable_bottom()));
      } else if (s.sentinel != Stack::Sentinel::kMapped && s.scans < kScansBeforeMapping) {
        unmapped.push_back(&s);
      } else {
        to_read.push_back(&s);
      }
    }
    s.dirty = false;
  }
  if (pagemap_fd_ >= 0 && (!unmapped.empty() || !to_read.empty())) {
    // An open pagemap stays the opener's: a forked child reads its sentinels.
    if (!unmapped.empty() && forks() == pagemap_forks_)
      scan_unmapped(unmapped, deep, to_read);
    else
      to_read.insert(to_read.end(), unmapped.begin(), unmapped.end());
    // Sentinels read for the first time are mapped to the zero page first,
    // in one call, rather than one page fault each.
    MadviseBatch populate(MADV_POPULATE_READ);
    if (MadviseBatch::batched())
      for (Stack* s : to_read)
        if (s->sentinel != Stack::Sentinel::kMapped) populate.add(sentinel_page(*s), page_size());
    populate.flush();
    count_syscalls(populate.syscalls());
    for (Stack* s : to_read) {
      s->sentinel = Stack::Sentinel::kMapped;
      if (went_deep(*s)) deep.push_back(s);
    }
    for (Stack* s : deep) {
      dontneed.add(s->usable_bottom(), std::size_t(deep_end(*s) - s->usable_bottom()));
      s->sentinel = Stack::Sentinel::kFresh;  // its sentinel page is unmapped again
      s->scans = 0;
    }
  }
  dontneed.flush();
  count_syscalls(dontneed.syscalls());
}

std::size_t StackPool::idle_estimate() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const FreeList& list : free_) n += idle_count(list);
  return n;
}

std::size_t StackPool::scavenge() {
  std::vector<Stack> idle;
  // Room for them before the lock is taken, so that no page of it faults
  // in under the lock: a low-water mark only falls between scavenges, so
  // no more can be idle at the second look than at the first.
  idle.reserve(idle_estimate());
  {
    std::lock_guard lock(mu_);
    for (FreeList& list : free_) {
      std::size_t n = idle_count(list);
      idle.insert(idle.end(), list.warm.begin(), list.warm.begin() + std::ptrdiff_t(n));
      // Frees the deque's emptied blocks: after a peak the list keeps no
      // more than its block map (a pointer per 16 stacks).
      list.warm.erase(list.warm.begin(), list.warm.begin() + std::ptrdiff_t(n));
      list.low_water = list.warm.size();
    }
  }
  if (idle.empty()) return 0;
  {
    MadviseBatch dontneed(MADV_DONTNEED);
    for (Stack& s : idle) {
      dontneed.add(s.usable_bottom(), s.usable());
      s.dirty = false;
    }
    dontneed.flush();
    count_syscalls(dontneed.syscalls());
  }
  std::lock_guard lock(mu_);
  for (Stack& s : idle) free_list(s.size).cold.push_back(s.base);
  return idle.size();
}

Stack StackCache::get(std::size_t usable_size) {
  // The default size, as asked, needs no rounding to be recognized.
  if (usable_size != default_request_ && round_stack_size(usable_size) != default_size_)
    return pool_->allocate(usable_size);
  if (cache_.empty()) {
    // Refill a batch at once so the pool's lock is taken once per many spawns.
    pool_->take_batch(default_size_ + kGuardBytes, cache_, kCacheLimit / 4);
    if (cache_.empty()) return pool_->allocate(usable_size);
  }
  Stack s = cache_.back();
  cache_.pop_back();
  count(+1);
  return s;
}

void StackCache::put(const Stack& s) {
  if (s.size != default_size_ + kGuardBytes) {
    Stack dirty = s;
    dirty.dirty = true;
    pool_->release(dirty);
    return;
  }
  count(-1);
  cache_.push_back(s);
  cache_.back().dirty = true;
  if (++frees_since_trim_ >= kTrimBatch) trim();
  if (cache_.size() > kCacheLimit) {
    // Give the older half back to the shared pool (trimmed).
    std::vector<Stack> half(cache_.begin(), cache_.begin() + cache_.size() / 2);
    cache_.erase(cache_.begin(), cache_.begin() + cache_.size() / 2);
    pool_->release_batch(half);
  }
}

void StackCache::trim() {
  frees_since_trim_ = 0;
  pool_->trim(cache_.data(), cache_.size());
}

void StackCache::shrink_when_idle() {
  trim();
  if (cache_.size() <= kIdleCacheKeep) return;
  std::vector<Stack> older(cache_.begin(), cache_.end() - kIdleCacheKeep);
  cache_.erase(cache_.begin(), cache_.end() - kIdleCacheKeep);
  pool_->release_batch(older);
}

void StackCache::flush() { pool_->release_batch(cache_); }

}  // namespace gort::detail
