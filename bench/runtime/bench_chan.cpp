// Channel and select micro-benchmarks. Each measures exactly what the
// benchmark of the same name in bench/peers/go/main.go measures, with the
// same structure:
//   chan_pingpong/workers:P       one round trip over two unbuffered channels
//   chan_buffered_1to1/workers:P  one item, 1 sender -> 1 receiver, capacity 128
//   chan_buffered_NtoN/workers:P  one item, 4 senders -> 4 receivers, capacity 128
//   select_2/workers:P            one item received by a select over 2 channels
//   select_8/workers:P            ... over 8 channels (capacity 128, fed round-robin)
// One benchmark iteration is one op. Timing is manual (UseManualTime): the
// runtime is booted, the fibers are spawned and parked on a start line
// first; only the stretch from releasing them until the last has finished
// is timed (Go's gang()). items_per_second is set as well (one item = one op).
#include <benchmark/benchmark.h>
#include <gort/chan.h>
#include <gort/gort.h>
#include <gort/select.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kChanCap = 128;  // as chanCap in the Go peer
using Fns = std::vector<std::function<void()>>;

// Runs fns on their own fibers, released together; returns the seconds from
// release until the last one returned.
double gang(const Fns& fns) {
  gort::WaitGroup ready, done;
  gort::Chan<int> start;
  ready.add(int64_t(fns.size()));
  done.add(int64_t(fns.size()));
  for (const auto& f : fns)
    go_spawn([&] {
      ready.done();
      start.recv();  // returns when start is closed
      f();
      done.done();
    });
  ready.wait();
  auto t0 = std::chrono::steady_clock::now();
  start.close();
  done.wait();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// n ops split over k parties, totalling exactly n (the Go peer's split).
std::vector<int64_t> split(int64_t n, int k) {
  std::vector<int64_t> parts(std::size_t(k), n / k);
  for (int i = 0; i < n % k; ++i) parts[std::size_t(i)]++;
  return parts;
}

// Boots a runtime per benchmark run and times one gang of max_iterations ops.
void run_timed(benchmark::State& state, int workers, const std::function<Fns(int64_t)>& make) {
  gort::run(gort::Config{.workers = workers}, [&] {
    const int64_t n = int64_t(state.max_iterations);
    while (state.KeepRunningBatch(n)) state.SetIterationTime(gang(make(n)));
    state.SetItemsProcessed(int64_t(state.iterations()));
  });
}

Fns pingpong(int64_t n) {
  auto ping = gort::make_chan<int64_t>(), pong = gort::make_chan<int64_t>();
  return {[=] {
            for (int64_t i = 0; i < n; ++i) {
              ping->send(i);
              pong->recv();
            }
          },
          [=] {
            for (int64_t i = 0; i < n; ++i) pong->send(*ping->recv());
          }};
}

Fns buffered_1to1(int64_t n) {
  auto ch = gort::make_chan<int64_t>(kChanCap);
  return {[=] {
            for (int64_t i = 0; i < n; ++i) ch->send(i);
          },
          [=] {
            for (int64_t i = 0; i < n; ++i) ch->recv();
          }};
}

Fns buffered_NtoN(int64_t n) {
  constexpr int kSenders = 4, kReceivers = 4;
  auto ch = gort::make_chan<int64_t>(kChanCap);
  Fns fns;
  for (int64_t k : split(n, kSenders))
    fns.push_back([=] {
      for (int64_t i = 0; i < k; ++i) ch->send(i);
    });
  for (int64_t k : split(n, kReceivers))
    fns.push_back([=] {
      for (int64_t i = 0; i < k; ++i) ch->recv();
    });
  return fns;
}

using Chans = std::vector<std::shared_ptr<gort::Chan<int64_t>>>;

Chans make_chans(int k) {
  Chans c;
  for (int i = 0; i < k; ++i) c.push_back(gort::make_chan<int64_t>(kChanCap));
  return c;
}

// One sender spreading n items round-robin over chans (the Go peer's feed).
std::function<void()> feed(int64_t n, const Chans& chans) {
  return [=] {
    std::size_t j = 0;
    for (int64_t i = 0; i < n; ++i) {
      chans[j]->send(i);
      if (++j == chans.size()) j = 0;
    }
  };
}

Fns select_2(int64_t n) {
  Chans c = make_chans(2);
  return {feed(n, c), [=] {
            for (int64_t i = 0; i < n; ++i) gort::select(gort::on_recv(c[0]), gort::on_recv(c[1]));
          }};
}

Fns select_8(int64_t n) {
  Chans c = make_chans(8);
  return {feed(n, c), [=] {
            for (int64_t i = 0; i < n; ++i)
              gort::select(gort::on_recv(c[0]), gort::on_recv(c[1]), gort::on_recv(c[2]), gort::on_recv(c[3]),
                           gort::on_recv(c[4]), gort::on_recv(c[5]), gort::on_recv(c[6]), gort::on_recv(c[7]));
          }};
}

[[maybe_unused]] const bool registered = [] {
  struct Entry {
    const char* name;
    Fns (*make)(int64_t);
  };
  for (Entry e :
       {Entry{"chan_pingpong", pingpong}, Entry{"chan_buffered_1to1", buffered_1to1},
        Entry{"chan_buffered_NtoN", buffered_NtoN}, Entry{"select_2", select_2}, Entry{"select_8", select_8}}) {
    for (int workers : {1, 2}) {
      benchmark::RegisterBenchmark((std::string(e.name) + "/workers:" + std::to_string(workers)).c_str(),
                                   [e, workers](benchmark::State& st) { run_timed(st, workers, e.make); })
          ->UseManualTime();
    }
  }
  return true;
}();

}  // namespace
