#!/bin/sh
# tests/apps/peer_conformance.sh -- runs the DUMB conformance suite
# (test_dumb_conformance.cpp) against a peer server of bench/peers/.
#
#   peer_conformance.sh go|node <conformance binary> <wrapper dir> <source dir> <build dir>
#
# The suite runs server binaries by table name from the directory compiled
# into its harness; test_dumb_conformance_peer's is <wrapper dir>, where this
# script writes `dumb_epoll`, a wrapper that execs the peer named by
# $GORT_PEER (an exec, so the harness's PR_SET_PDEATHSIG and signals reach
# the peer itself).  The suite is then run for that row only: its results
# are the peer's, under the row's name.  Exits 77 (ctest SKIP_RETURN_CODE)
# when the peer's toolchain is not installed (scripts/install-deps --bench).
set -eu
peer=$1 suite=$2 wrappers=$3 src=$4 build=$5

case "$peer" in
  go)
    command -v go >/dev/null 2>&1 || { echo "go not on PATH: skipped"; exit 77; }
    # The module and build caches stay under the build tree; no network.
    cache="$build/go-cache"
    mkdir -p "$build/peers"
    GOCACHE="$cache/cache" GOPATH="$cache/gopath" GOFLAGS=-mod=mod GOPROXY=off \
      sh -c 'cd "$1" && go build -o "$2" .' sh "$src/bench/peers/go-dumb" "$build/peers/go-dumb"
    GORT_PEER_COMMAND="$build/peers/go-dumb"
    ;;
  node)
    node=$(command -v node || command -v nodejs || true)
    [ -n "$node" ] || { echo "node not on PATH: skipped"; exit 77; }
    GORT_PEER_COMMAND="$node --stack-size=7000 $src/bench/peers/node/dumb.js"
    ;;
  *) echo "usage: $0 go|node <suite> <wrapper dir> <source dir> <build dir>" >&2; exit 2 ;;
esac

# The wrapper is the same for every peer (it reads the environment), so
# tests running in parallel may both write it; write-then-rename keeps each
# write whole.
mkdir -p "$wrappers"
tmp="$wrappers/.dumb_epoll.$$"
printf '#!/bin/sh\nexec $GORT_PEER_COMMAND "$@"\n' > "$tmp"
chmod +x "$tmp"
mv -f "$tmp" "$wrappers/dumb_epoll"

export GORT_PEER_COMMAND
exec "$suite" --gtest_filter='*/dumb_epoll'
