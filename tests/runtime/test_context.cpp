// gort::Context: cancel and its propagation, deadlines, done() as a select
// case, values, sleep_for(ctx), hooks, and the background context's nil
// done channel. Bounds are generous.
#include <gort/context.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using gort::ContextError;
using gort_test::kScale;
using gort_test::WorkersTest;

class Context : public WorkersTest {};
GORT_INSTANTIATE(Context);

TEST_P(Context, BackgroundIsNeverDone) {
  run([] {
    gort::Context bg = gort::background();
    EXPECT_EQ(bg.done(), nullptr);
    EXPECT_EQ(bg.err(), ContextError::kNone);
    EXPECT_FALSE(bg.deadline().has_value());
    // A nil done channel is never ready: the timeout wins.
    EXPECT_EQ(gort::select(gort::on_recv(bg.done()), gort::on_recv(gort::after(5ms))), 1);
  });
}

TEST_P(Context, CancelClosesDoneAndSetsErr) {
  run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    ASSERT_NE(ctx.done(), nullptr);
    EXPECT_EQ(ctx.err(), ContextError::kNone);
    EXPECT_FALSE(ctx.done()->try_recv().has_value());
    EXPECT_FALSE(ctx.done()->closed());
    cancel();
    EXPECT_TRUE(ctx.done()->closed());
    EXPECT_EQ(ctx.err(), ContextError::kCanceled);
    EXPECT_STREQ(gort::to_string(ctx.err()), "context canceled");
    cancel();  // idempotent
    auto copy = cancel;
    copy();
    EXPECT_EQ(ctx.err(), ContextError::kCanceled);
  });
}

TEST_P(Context, CancelWakesEveryWaiterInSelect) {
  run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    const int n = 50;
    gort::WaitGroup wg;
    std::atomic<int> woken{0};
    auto jobs = gort::make_chan<int>();
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      go_spawn([&, ctx = ctx] {
        int chosen = gort::select(gort::on_recv(jobs), gort::on_recv(ctx.done()));
        if (chosen == 1 && ctx.err() == ContextError::kCanceled) woken.fetch_add(1);
        wg.done();
      });
    }
    gort::sleep_for(10ms);
    cancel();
    wg.wait();
    EXPECT_EQ(woken.load(), n);
  });
}

TEST_P(Context, CancelPropagatesToDescendantsNotAncestors) {
  run([] {
    auto [root, cancel_root] = gort::with_cancel(gort::background());
    auto [mid, cancel_mid] = gort::with_cancel(root);
    static const gort::ContextKey<int> kKey{"k"};
    gort::Context valued = gort::with_value(mid, kKey, 7);
    auto [leaf, cancel_leaf] = gort::with_cancel(valued);
    auto [sibling, cancel_sibling] = gort::with_cancel(root);

    cancel_mid();
    EXPECT_EQ(mid.err(), ContextError::kCanceled);
    EXPECT_EQ(valued.err(), ContextError::kCanceled);
    EXPECT_TRUE(valued.done()->closed());
    EXPECT_EQ(leaf.err(), ContextError::kCanceled);
    EXPECT_TRUE(leaf.done()->closed());
    EXPECT_EQ(root.err(), ContextError::kNone);
    EXPECT_EQ(sibling.err(), ContextError::kNone);

    // A child of a canceled context is born canceled.
    auto [late, cancel_late] = gort::with_cancel(mid);
    EXPECT_EQ(late.err(), ContextError::kCanceled);

    cancel_root();
    EXPECT_EQ(sibling.err(), ContextError::kCanceled);
  });
}

TEST_P(Context, DeadlineCancelsWithDeadlineExceeded) {
  run([] {
    auto start = Clock::now();
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 30ms);
    ASSERT_TRUE(ctx.deadline().has_value());
    EXPECT_GE(*ctx.deadline(), start + 30ms);
    EXPECT_EQ(gort::recv(ctx.done()), std::nullopt);  // closed
    EXPECT_GE(Clock::now() - start, 30ms);
    EXPECT_LT(Clock::now() - start, 5s);
    EXPECT_EQ(ctx.err(), ContextError::kDeadlineExceeded);
    EXPECT_STREQ(gort::to_string(ctx.err()), "context deadline exceeded");
    cancel();  // after the deadline: err stays
    EXPECT_EQ(ctx.err(), ContextError::kDeadlineExceeded);
  });
}

TEST_P(Context, ChildNeverOutlivesItsParentsDeadline) {
  run([] {
    auto [parent, cancel_parent] = gort::with_timeout(gort::background(), 20ms);
    auto [child, cancel_child] = gort::with_timeout(parent, 1h);
    EXPECT_EQ(child.deadline(), parent.deadline());
    gort::recv(child.done());
    EXPECT_EQ(child.err(), ContextError::kDeadlineExceeded);
    auto [past, cancel_past] = gort::with_deadline(gort::background(), Clock::now() - 1s);
    EXPECT_EQ(past.err(), ContextError::kDeadlineExceeded);
    cancel_child();
    cancel_parent();
  });
}

TEST_P(Context, CancelBeforeTheDeadlineStopsTheTimer) {
  run([] {
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 1h);
    cancel();
    EXPECT_EQ(ctx.err(), ContextError::kCanceled);
  });
}

TEST_P(Context, DroppedContextsFreeThemselves) {
  // Neither canceled nor expired: dropping the handles must free the node,
  // its timer and its place in the parent (ASan's leak check).
  run([] {
    auto [root, cancel_root] = gort::with_cancel(gort::background());
    for (int i = 0; i < 100; ++i) {
      auto [c, cancel] = gort::with_timeout(root, 1h);
      auto [d, cancel_d] = gort::with_cancel(c);
      (void)d;
    }
    cancel_root();
  });
}

TEST_P(Context, Values) {
  run([] {
    static const gort::ContextKey<std::string> kUser{"user"};
    static const gort::ContextKey<int> kId{"id"};
    static const gort::ContextKey<int> kOther{"other"};
    gort::Context a = gort::with_value(gort::background(), kUser, "ann");
    auto [b, cancel] = gort::with_cancel(a);
    gort::Context c = gort::with_value(b, kId, 42);
    gort::Context d = gort::with_value(c, kUser, std::string("bob"));
    ASSERT_NE(c.value(kUser), nullptr);
    EXPECT_EQ(*c.value(kUser), "ann");
    EXPECT_EQ(*d.value(kUser), "bob");  // the nearest wins
    EXPECT_EQ(*d.value(kId), 42);
    EXPECT_EQ(d.value(kOther), nullptr);
    EXPECT_EQ(gort::background().value(kId), nullptr);
    EXPECT_EQ(a.done(), nullptr);  // values alone add no cancellation
    cancel();
    EXPECT_EQ(d.err(), ContextError::kCanceled);
  });
}

TEST_P(Context, SleepForIsInterruptedByCancel) {
  run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    go_spawn([cancel = cancel] {
      gort::sleep_for(20ms);
      cancel();
    });
    auto start = Clock::now();
    EXPECT_EQ(gort::sleep_for(ctx, 1h), ContextError::kCanceled);
    EXPECT_LT(Clock::now() - start, 30s);
    EXPECT_EQ(gort::sleep_for(ctx, 1h), ContextError::kCanceled);  // already done: at once
  });
}

TEST_P(Context, SleepForRunsItsCourse) {
  run([] {
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 1h);
    auto start = Clock::now();
    EXPECT_EQ(gort::sleep_for(ctx, 20ms), ContextError::kNone);
    EXPECT_GE(Clock::now() - start, 20ms);
    EXPECT_EQ(gort::sleep_for(gort::background(), 1ms), ContextError::kNone);
    auto [short_ctx, cancel_short] = gort::with_timeout(ctx, 10ms);
    EXPECT_EQ(gort::sleep_for(short_ctx, 1h), ContextError::kDeadlineExceeded);
    cancel();
  });
}

TEST_P(Context, CancelFromAPlainThread) {
  run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    std::thread t([cancel = cancel] {
      std::this_thread::sleep_for(10ms);
      cancel();
    });
    gort::recv(ctx.done());
    EXPECT_EQ(ctx.err(), ContextError::kCanceled);
    t.join();
  });
}

TEST_P(Context, CancelHooksRunOnceOrAreRemoved) {
  run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    std::atomic<int> runs{0};
    gort::detail::CancelHook kept, removed;
    kept.run = removed.run = [](void* arg) { static_cast<std::atomic<int>*>(arg)->fetch_add(1); };
    kept.arg = removed.arg = &runs;
    ASSERT_TRUE(gort::detail::add_cancel_hook(ctx, &kept));
    ASSERT_TRUE(gort::detail::add_cancel_hook(ctx, &removed));
    EXPECT_TRUE(gort::detail::remove_cancel_hook(&removed));
    cancel();
    EXPECT_EQ(runs.load(), 1);
    EXPECT_FALSE(gort::detail::remove_cancel_hook(&kept));  // it ran
    gort::detail::CancelHook late;
    late.run = kept.run;
    late.arg = &runs;
    EXPECT_FALSE(gort::detail::add_cancel_hook(ctx, &late));  // already done
  });
}

TEST_P(Context, StressConcurrentCancelsAndChildren) {
  run([] {
    const int rounds = 200 / kScale;
    for (int r = 0; r < rounds; ++r) {
      auto [root, cancel_root] = gort::with_cancel(gort::background());
      gort::WaitGroup wg;
      std::atomic<int> seen{0};
      for (int i = 0; i < 8; ++i) {
        wg.add(1);
        go_spawn([&, root = root, i] {
          auto [c, cancel] = i % 2 ? gort::with_cancel(root) : gort::with_timeout(root, 1h);
          if (i % 3 == 0) cancel();
          gort::recv(c.done());
          if (c.err() != ContextError::kNone) seen.fetch_add(1);
          wg.done();
        });
      }
      cancel_root();
      wg.wait();
      EXPECT_EQ(seen.load(), 8);
    }
  });
}

TEST(ContextOutsideRuntime, CancelWorksWithoutARuntime) {
  auto [ctx, cancel] = gort::with_cancel(gort::background());
  cancel();
  EXPECT_EQ(ctx.err(), ContextError::kCanceled);
  EXPECT_EQ(gort::sleep_for(ctx, 1h), ContextError::kCanceled);
  EXPECT_THROW(gort::with_timeout(gort::background(), 1h), std::logic_error);
}
