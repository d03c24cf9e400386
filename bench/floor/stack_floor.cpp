// stack_floor -- what the kernel charges for the memory of a fan-out of
// parked fibers, beside what gort's stack pool pays for it.  An instrument
// for docs/BENCHMARKS.md (*Fan-out and stacks*), not a gort benchmark: it
// tells the kernel's share of fanout_park's time per fiber from the
// runtime's own.
//
//   stack_floor [--stacks N] [--rounds R]      (default 1000000 stacks, 3 rounds)
//
// Each round measures, in an order that alternates between rounds, and
// reports the median per stack:
//   pool    a fresh detail::StackPool hands out N default-size stacks: the
//           slabs' mmap, guard install and populate calls, exactly as a
//           fan-out's first round pays them (stack.cpp, carve_slab);
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

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "stack.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kPage = 4096;

double ns_since(Clock::time_point t0) { return std::chrono::duration<double, std::nano>(Clock::now() - t0).count(); }

double pool_ns_per_stack(std::size_t n) {
  gort::detail::StackPool pool;
  std::vector<gort::detail::Stack> stacks;
  stacks.reserve(n);
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) stacks.push_back(pool.allocate(gort::detail::kDefaultStackSize));
  double ns = ns_since(t0);
  for (const gort::detail::Stack& s : stacks) pool.release(s);  // none may be in use when it unmaps
  return ns / double(n);
}

// Returns -1 when the kernel refuses the mapping or the populate.
double populate_ns_per_page(std::size_t pages, bool huge) {
  std::size_t bytes = pages * kPage;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -1;
  madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  auto t0 = Clock::now();
  int rc = madvise(p, bytes, 23 /* MADV_POPULATE_WRITE */);
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
      "usage: stack_floor [--stacks N] [--rounds R]\n\n"
      "Per stack, medians over R rounds (default 3) of N stacks (default 1000000):\n"
      "  pool  a fresh gort stack pool handing out N default-size stacks\n"
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
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") usage(0);
    if (a == "--stacks")
      n = std::size_t(positive_arg(argc, argv, i));
    else if (a == "--rounds")
      rounds = int(positive_arg(argc, argv, i));
    else {
      std::fprintf(stderr, "stack_floor: unknown argument '%s'\n", argv[i]);
      usage(2);
    }
  }
  std::vector<double> pool, page, huge;
  for (int r = 0; r < rounds; ++r) {
    std::fprintf(stderr, "stack_floor: round %d of %d\n", r + 1, rounds);
    // Alternate the order: whatever the kernel keeps from one phase
    // (free lists, page tables) helps the next in turn.
    for (int k = 0; k < 3; ++k) {
      switch ((r % 2 == 0) ? k : 2 - k) {
        case 0: pool.push_back(pool_ns_per_stack(n)); break;
        case 1: page.push_back(populate_ns_per_page(n, false)); break;
        case 2: huge.push_back(populate_ns_per_page(n, true)); break;
      }
    }
  }
  if (*std::min_element(page.begin(), page.end()) < 0 || *std::min_element(huge.begin(), huge.end()) < 0) {
    std::fputs("stack_floor: the kernel refused a mapping or a populate (memory?)\n", stderr);
    return 1;
  }
  double mp = median(pool), mg = median(page), mh = median(huge);
  std::printf("%zu stacks, median of %d rounds, ns per stack:\n", n, rounds);
  std::printf("  pool  %8.0f   (gort's carve: mmap, guards, top page, sentinel)\n", mp);
  std::printf("  page  %8.0f   (one fresh 4 KiB page)\n", mg);
  std::printf("  huge  %8.0f   (4 KiB of a mapping advised MADV_HUGEPAGE)\n", mh);
  std::printf("  pool/page %.2f, page/huge %.2f\n", mp / mg, mg / mh);
  std::printf("transparent huge pages: enabled %s, defrag %s\n", sysfs_line("enabled").c_str(),
              sysfs_line("defrag").c_str());
  return 0;
}
