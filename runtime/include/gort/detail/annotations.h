// annotations.h: lock annotations for clang's -Wthread-safety (no-ops elsewhere).
#pragma once

#if defined(__clang__)
#define GORT_CAPABILITY(x) __attribute__((capability(x)))
#define GORT_SCOPED_CAPABILITY __attribute__((scoped_lockable))
#define GORT_GUARDED_BY(x) __attribute__((guarded_by(x)))
#define GORT_REQUIRES(...) __attribute__((requires_capability(__VA_ARGS__)))
#define GORT_ACQUIRE(...) __attribute__((acquire_capability(__VA_ARGS__)))
#define GORT_RELEASE(...) __attribute__((release_capability(__VA_ARGS__)))
#define GORT_TRY_ACQUIRE(...) __attribute__((try_acquire_capability(__VA_ARGS__)))
#define GORT_NO_THREAD_SAFETY_ANALYSIS __attribute__((no_thread_safety_analysis))
#else
#define GORT_CAPABILITY(x)
#define GORT_SCOPED_CAPABILITY
#define GORT_GUARDED_BY(x)
#define GORT_REQUIRES(...)
#define GORT_ACQUIRE(...)
#define GORT_RELEASE(...)
#define GORT_TRY_ACQUIRE(...)
#define GORT_NO_THREAD_SAFETY_ANALYSIS
#endif
