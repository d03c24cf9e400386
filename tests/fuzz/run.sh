#!/bin/sh
# tests/fuzz/run.sh -- builds the fuzz targets (clang, libFuzzer, ASan+UBSan)
# into BUILD and runs each for SECONDS on its corpus.
#
#   run.sh BUILD SECONDS            `make fuzz`: explore; new inputs that
#                                   reach new coverage are added to
#                                   BUILD/corpus/<target> (the committed
#                                   seeds in tests/fuzz/corpus/ are read, not
#                                   written)
#   run.sh BUILD SECONDS --smoke    CI: the same, on a scratch copy of the
#                                   seeds, so the tree never changes
#
# Exits non-zero if a target fails to build or finds a crash, a leak, a
# sanitizer error or a difference from its reference model; the reproducer
# is written to BUILD/findings/.  Prints each target's last status line
# (executions per second, coverage).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$1
seconds=$2
mode=${3:-explore}
targets="fuzz_dumb_framer fuzz_chat_room fuzz_line_buffer fuzz_address fuzz_http_head"

CXX=${FUZZ_CXX:-clang++} cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Debug >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "${JOBS:-2}" >"$build.build.log" 2>&1 || { cat "$build.build.log"; exit 1; }

mkdir -p "$build/findings"
status=0
for target in $targets; do
  corpus=$build/corpus/$target
  if [ "$mode" = --smoke ]; then
    corpus=$build/smoke-corpus/$target
    rm -rf "$corpus"
  fi
  mkdir -p "$corpus"
  cp "$here/corpus/$target/"* "$corpus/" 2>/dev/null || true
  log=$build/$target.log
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$build/$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$build/findings/$target-" -print_final_stats=1 "$corpus" >"$log" 2>&1; then
    echo "$target: ok: $(grep -E '^#[0-9]+' "$log" | tail -1)"
  else
    echo "$target: FAILED (reproducer in $build/findings/); the end of its log:"
    tail -40 "$log"
    status=1
  fi
done
exit $status
