// stack_floor -- what the kernel charges for the memory of a fan-out of
// parked fibers, beside what gort's stack pool pays for it.  An instrument
// for docs/BENCHMARKS.md (*Fan-out and stacks*), not a gort benchmark: it
// tells the kernel's share of fanout_park's time per fiber from the
// runtime's own.
//
//   stack_floor [--stacks N] [--rounds R] [--threads T]
//                                      (default 1000000 stacks, 3 rounds, 1 thread)
//
// Each round measures, in an order that alternates between rounds, and
// reports the median per stack:
//   pool    a fresh detail::StackPool hands out N default-size stacks, to T
//           threads at once (N / T each): the reservations' mmap and the
//           slabs' guard install and populate calls, exactly as a fan-out's
//           first round pays them on T workers (stack.cpp, carve_slab); the
//           figure is wall time per stack;
//   page    N fresh 4 KiB pages committed with MADV_POPULATE_WRITE in one
//           dense mapping without transparent huge pages: the least one
//           private page per fiber costs, page tables nearly shared;
//   huge    the same bytes advised MADV_HUGEPAGE, as Go 1.19 advises its
//           heap (where its 2 KiB stacks live): one fault per 2 MiB where
//           the kernel has, or can compact, free huge pages. That depends
//           on the machine's state; the transparent huge page settings are
//           printed.
// Nothing is timed but the calls above; unmapping is not.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "stack.h"

namespace {

using Clock = std::chrono::steady_clock;
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

double ns_since(Clock::time_point t0) { return std::chrono::duration<double, std::nano>(Clock::now() - t0).count(); }

double pool_ns_per_stack(std::size_t n, int threads) {
  gort::detail::StackPool pool;
  std::vector<std::vector<gort::detail::Stack>> stacks(static_cast<std::size_t>(threads));
  std::size_t each = n / std::size_t(threads);
  for (auto& mine : stacks) mine.reserve(each);
  auto t0 = Clock::now();
  std::vector<std::thread> carvers;
  for (auto& mine : stacks)
    carvers.emplace_back([&pool, &mine, each] {
      for (std::size_t i = 0; i < each; ++i) mine.push_back(pool.allocate(gort::detail::kDefaultStackSize));
    });
  for (auto& t : carvers) t.join();
  double ns = ns_since(t0);
  for (auto& mine : stacks)
    for (const gort::detail::Stack& s : mine) pool.release(s);  // none may be in use when it unmaps
  return ns / double(each * std::size_t(threads));
}

// Returns -1 when the kernel refuses the mapping or the populate.
double populate_ns_per_page(std::size_t pages, bool huge) {
  std::size_t bytes = pages * std::size_t(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -1;
  if (madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {  // no transparent huge pages here
    munmap(p, bytes);
    return -1;
  }
  auto t0 = Clock::now();
  int rc = madvise(p, bytes, MADV_POPULATE_WRITE);
  double ns = ns_since(t0);
  munmap(p, bytes);
  return rc == 0 ? ns / double(pages) : -1;
}

std::string sysfs_line(const char* name) {
  std::string path = std::string("/sys/kernel/mm/transparent_hugepage/") + name, line = "unknown";
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[160] = {};
    if (std::fgets(buf, sizeof buf, f) != nullptr) line = buf;
    std::fclose(f);
  }
  line.erase(line.find_last_not_of('\n') + 1);
  return line;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

[[noreturn]] void usage(int status) {
  std::fputs(
      "usage: stack_floor [--stacks N] [--rounds R] [--threads T]\n\n"
      "Per stack, medians over R rounds (default 3) of N stacks (default 1000000):\n"
      "  pool  a fresh gort stack pool handing out N default-size stacks to T threads\n"
      "        (default 1) at once; wall time\n"
      "  page  one fresh 4 KiB page per stack, committed in one call, no huge pages\n"
      "  huge  the same bytes advised MADV_HUGEPAGE, as Go advises its heap\n",
      status == 0 ? stdout : stderr);
  std::exit(status);
}

long positive_arg(int argc, char** argv, int& i) {
  if (i + 1 >= argc) usage(2);
  char* end = nullptr;
  long v = std::strtol(argv[++i], &end, 10);
  if (*end != '\0' || v <= 0) {
    std::fprintf(stderr, "stack_floor: %s wants a positive integer, not '%s'\n", argv[i - 1], argv[i]);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1'000'000;
  int rounds = 3, threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") usage(0);
    if (a == "--stacks")
      n = std::size_t(positive_arg(argc, argv, i));
    else if (a == "--rounds")
      rounds = int(positive_arg(argc, argv, i));
    else if (a == "--threads")
      threads = int(positive_arg(argc, argv, i));
    else {
      std::fprintf(stderr, "stack_floor: unknown argument '%s'\n", argv[i]);
      usage(2);
    }
  }
  if (std::size_t(threads) > n || threads > 256) {
    std::fprintf(stderr, "stack_floor: --threads must be at most --stacks and 256 (got %d)\n", threads);
    return 2;
  }
  std::vector<double> pool, page, huge;
  for (int r = 0; r < rounds; ++r) {
    std::fprintf(stderr, "stack_floor: round %d of %d\n", r + 1, rounds);
    // Alternate the order: whatever the kernel keeps from one phase
    // (free lists, page tables) helps the next in turn.
    for (int k = 0; k < 3; ++k) {
      switch ((r % 2 == 0) ? k : 2 - k) {
        case 0: pool.push_back(pool_ns_per_stack(n, threads)); break;
        case 1: page.push_back(populate_ns_per_page(n, false)); break;
        case 2: huge.push_back(populate_ns_per_page(n, true)); break;
      }
    }
  }
  if (*std::min_element(page.begin(), page.end()) < 0 || *std::min_element(huge.begin(), huge.end()) < 0) {
    std::fputs("stack_floor: the kernel refused a mapping or an advice (memory? transparent huge pages?)\n", stderr);
    return 1;
  }
  double mp = median(pool), mg = median(page), mh = median(huge);
  std::printf("%zu stacks, median of %d rounds, ns per stack (pool: %d thread%s):\n", n, rounds, threads,
              threads == 1 ? "" : "s");
  std::printf("  pool  %8.0f   (gort's carve: mmap, guards, top page%s)\n", mp,
              gort::detail::StackPool().scans_page_tables() ? "" : ", sentinel");
  std::printf("  page  %8.0f   (one fresh 4 KiB page)\n", mg);
  std::printf("  huge  %8.0f   (4 KiB of a mapping advised MADV_HUGEPAGE)\n", mh);
  std::printf("  pool/page %.2f, page/huge %.2f\n", mp / mg, mg / mh);
  std::printf("transparent huge pages: enabled %s, defrag %s\n", sysfs_line("enabled").c_str(),
              sysfs_line("defrag").c_str());
  return 0;
}
