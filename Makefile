# gort: the one entry point.  `make help` lists the targets.
SHELL   := /bin/bash
JOBS    ?= $(shell nproc)
PREFIX  ?= /usr/local
GEN     := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CTEST   := ctest --output-on-failure --timeout 600
# Optimized, debug info, assertions on (no -DNDEBUG).
TESTFLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" -DGORT_WERROR=ON

.PHONY: help deps test test-asan test-tsan fuzz build bench install run clean

help:
	@echo "make test       build (-O2 -g, asserts on) into build/test and run the test suite"
	@echo "make test-asan  same under AddressSanitizer + UndefinedBehaviorSanitizer (build/asan)"
	@echo "make test-tsan  same under ThreadSanitizer, built with clang (build/tsan)"
	@echo "make fuzz       build the libFuzzer targets (clang, ASan+UBSan) into build/fuzz and run each"
	@echo "                for FUZZ_SECONDS (default 600); new inputs go to build/fuzz/corpus"
	@echo "make build      Release build into build/release"
	@echo "make bench      Release micro-benchmarks (fan-out included, and its system calls per fiber"
	@echo "                under strace) and fairness experiments, beside the Go peer"
	@echo "make bench-servers  every DUMB server and the Go/Node.js peers under dumb_load (15-35 min;"
	@echo "                BENCH_ARGS=--quick: ~3 min), JSON/CSV/SVG into build/bench-servers"
	@echo "make install PREFIX=/usr/local"
	@echo "make run        start dumb_fiber on 127.0.0.1:8090"

deps:
	@scripts/install-deps

test: deps
	cmake -S . -B build/test $(GEN) $(TESTFLAGS)
	cmake --build build/test -j $(JOBS)
	$(CTEST) --test-dir build/test -j $(JOBS)

test-asan: deps
	cmake -S . -B build/asan $(GEN) $(TESTFLAGS) -DGORT_SANITIZE=address -DGORT_BUILD_BENCH=OFF
	cmake --build build/asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(CTEST) --test-dir build/asan -j $(JOBS)

test-tsan: deps
	CXX=clang++ CC=clang cmake -S . -B build/tsan $(GEN) $(TESTFLAGS) -DGORT_SANITIZE=thread -DGORT_BUILD_BENCH=OFF
	cmake --build build/tsan -j $(JOBS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" $(CTEST) --test-dir build/tsan -j $(JOBS)

FUZZ_SECONDS ?= 600
fuzz: deps
	@mkdir -p build
	JOBS=$(JOBS) sh tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

build: deps
	cmake -S . -B build/release $(GEN) -DCMAKE_BUILD_TYPE=Release -DGORT_BUILD_TESTS=OFF
	cmake --build build/release -j $(JOBS)

bench: build
	@scripts/install-deps --bench
	python3 bench/run_micro.py --build build/release
	python3 bench/fanout_syscalls.py --build build/release
	python3 bench/fairness/run.py --build build/release

.PHONY: bench-servers
bench-servers: build
	@scripts/install-deps --bench
	python3 bench/servers/run.py --build build/release $(BENCH_ARGS)

install: build
	cmake --install build/release --prefix $(PREFIX)

run: build
	build/release/apps/dumb_fiber --host 127.0.0.1 --port 8090

clean:
	rm -rf build
