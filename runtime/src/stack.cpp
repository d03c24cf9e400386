// stack.cpp: see stack.h for the design.
#include "stack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "platform.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

namespace gort::detail {

namespace {

GuardMode probe_guard_mode() {
  const char* env = std::getenv("GORT_GUARD");
  if (env && std::strcmp(env, "mprotect") == 0) return GuardMode::kMprotect;
  // Try the cheap guard on a scratch mapping; EINVAL means an older kernel.
  std::size_t page = page_size();
  void* p = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
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

void trim_stack(Stack& s) {
  if (!s.dirty) return;
  char* from = s.usable_bottom();
  char* to = s.top() - kRetainedBytes;
  if (to > from) madvise(from, std::size_t(to - from), MADV_DONTNEED);
  s.dirty = false;
}

StackPool::StackPool() : mode_(probe_guard_mode()), slabs_(new Slab[kMaxSlabs]) {}

StackPool::~StackPool() {
  int n = nslabs_.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) munmap(slabs_[i].base, slabs_[i].stack_size * slabs_[i].count);
  delete[] slabs_;
}

std::size_t StackPool::slab_count() const {
  return std::size_t(nslabs_.load(std::memory_order_acquire));
}

// Called with mu_ held.
std::vector<Stack>& StackPool::free_list(std::size_t stack_size) {
  for (auto& [size, stacks] : free_)
    if (size == stack_size) return stacks;
  return free_.emplace_back(stack_size, std::vector<Stack>{}).second;
}

// Called with mu_ held.
void StackPool::add_slab(std::size_t stack_size) {
  int index = nslabs_.load(std::memory_order_relaxed);
  if (index >= kMaxSlabs) throw std::bad_alloc();
  std::size_t bytes = stack_size * kStacksPerSlab;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  char* base = static_cast<char*>(p);
  std::vector<Stack>* list = &free_list(stack_size);
  for (int i = kStacksPerSlab - 1; i >= 0; --i) {
    char* sb = base + std::size_t(i) * stack_size;
    int rc = mode_ == GuardMode::kGuardInstall ? madvise(sb, kGuardBytes, MADV_GUARD_INSTALL)
                                               : mprotect(sb, kGuardBytes, PROT_NONE);
    if (rc != 0) {
      // Either the kernel is out of mappings (mprotect mode: ENOMEM) or out of
      // memory for page tables. Give back what we took and report.
      munmap(base, bytes);
      list->erase(std::remove_if(list->begin(), list->end(),
                                 [&](const Stack& s) { return s.base >= base && s.base < base + bytes; }),
                  list->end());
      throw std::bad_alloc();
    }
    list->push_back(Stack{sb, stack_size, kGuardBytes, false});
  }
  slabs_[index] = Slab{base, stack_size, kStacksPerSlab};
  // release: pairs with slab_count()'s acquire load.
  nslabs_.store(index + 1, std::memory_order_release);
}

Stack StackPool::allocate(std::size_t usable_size) {
  std::size_t stack_size = round_stack_size(usable_size) + kGuardBytes;
  std::lock_guard lock(mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<Stack>& stacks = free_list(stack_size);
    if (!stacks.empty()) {
      Stack s = stacks.back();
      stacks.pop_back();
      note_acquired();
      return s;
    }
    add_slab(stack_size);
  }
  throw std::bad_alloc();
}

void StackPool::release(Stack s) {
  trim_stack(s);
  note_returned();
  std::lock_guard lock(mu_);
  free_list(s.size).push_back(s);
}

void StackPool::release_batch(std::vector<Stack>& in) {
  for (Stack& s : in) trim_stack(s);
  std::lock_guard lock(mu_);
  for (Stack& s : in) free_list(s.size).push_back(s);
  in.clear();
}

bool StackPool::take_batch(std::size_t stack_size, std::vector<Stack>& out, std::size_t max) {
  std::lock_guard lock(mu_);
  std::vector<Stack>& stacks = free_list(stack_size);
  while (!stacks.empty() && max-- > 0) {
    out.push_back(stacks.back());
    stacks.pop_back();
  }
  return !out.empty();
}

Stack StackCache::get(std::size_t usable_size) {
  std::size_t rounded = round_stack_size(usable_size);
  if (rounded != default_size_) return pool_->allocate(usable_size);
  if (cache_.empty()) {
    // Refill a batch at once so the pool's lock is taken once per many spawns.
    pool_->take_batch(default_size_ + kGuardBytes, cache_, kCacheLimit / 4);
    if (cache_.empty()) return pool_->allocate(usable_size);
  }
  Stack s = cache_.back();
  cache_.pop_back();
  pool_->note_acquired();
  return s;
}

void StackCache::put(Stack s) {
  s.dirty = true;
  if (s.size != default_size_ + kGuardBytes) {
    pool_->release(s);
    return;
  }
  pool_->note_returned();
  cache_.push_back(s);
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
  for (Stack& s : cache_) trim_stack(s);
}

void StackCache::flush() {
  pool_->release_batch(cache_);
}

}  // namespace gort::detail
