// Command go_peer is the Go reference for gort's runtime micro-benchmarks.
//
// It measures the same operations as the C++ benchmarks in bench/runtime, with
// the same names, using goroutines, and prints one JSON object per line to
// stdout:
//
//	{"name":"yield","procs":1,"ns_per_op":123.4,"iterations":1600000}
//
// It is a plain program rather than a `go test -bench` suite so that the
// runner (bench/run_micro.py) controls GOMAXPROCS, repetitions and output
// format directly, and gets the median of several runs instead of one.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// chanCap is the capacity of the buffered channels; the C++ benchmarks use
// the same so that the numbers compare like with like.
const chanCap = 128

// maxIterations bounds the calibration, as in Go's testing package.
const maxIterations = 1_000_000_000

// A benchmark performs n operations and returns the wall time of the timed
// region only: creating goroutines and channels, and letting them reach
// their start line, happen before the clock starts.
type benchmark struct {
	name string
	run  func(n int) time.Duration
}

var benchmarks = []benchmark{
	{"yield", benchYield},
	{"spawn_join", benchSpawnJoin},
	{"mutex_handoff", benchMutexHandoff},
	{"chan_pingpong", benchChanPingPong},
	{"chan_buffered_1to1", benchChanBuffered1to1},
	{"chan_buffered_NtoN", benchChanBufferedNtoN},
	{"select_2", benchSelect2},
	{"select_8", benchSelect8},
}

// gang runs fns in their own goroutines and returns the wall time from the
// moment they are released together until the last one has returned. The
// goroutines are created and parked on a start line before the clock starts,
// so goroutine creation is not part of the measurement; what remains is a
// constant wake-up/join cost of a few microseconds, negligible against the
// ~0.2 s of a run.
func gang(fns ...func()) time.Duration {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(len(fns))
	done.Add(len(fns))
	for _, f := range fns {
		f := f
		go func() {
			ready.Done()
			<-start
			f()
			done.Done()
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	return time.Since(t0)
}

// split divides n operations among k goroutines so that the total is exactly
// n, which keeps ns_per_op = time / n honest when n is not a multiple of k.
func split(n, k int) []int {
	parts := make([]int, k)
	for i := range parts {
		parts[i] = n / k
		if i < n%k {
			parts[i]++
		}
	}
	return parts
}

// yield: two goroutines calling runtime.Gosched in a loop; one op = one
// Gosched call, counted over both goroutines.
func benchYield(n int) time.Duration {
	parts := split(n, 2)
	loop := func(k int) func() {
		return func() {
			for i := 0; i < k; i++ {
				runtime.Gosched()
			}
		}
	}
	return gang(loop(parts[0]), loop(parts[1]))
}

// spawn_join: one op = create a goroutine, let it run, and wait for it.
// Spawning is the thing measured, so the loop runs on the timing goroutine
// itself.
func benchSpawnJoin(n int) time.Duration {
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
	return time.Since(t0)
}

// mutex_handoff: two goroutines take turns on one sync.Mutex; the Gosched
// after each unlock gives the other goroutine the chance to take the lock
// next, so acquisitions alternate instead of one goroutine re-locking in a
// tight loop. One op = one lock acquisition, counted over both goroutines.
func benchMutexHandoff(n int) time.Duration {
	var mu sync.Mutex
	counter := 0
	parts := split(n, 2)
	loop := func(k int) func() {
		return func() {
			for i := 0; i < k; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
				runtime.Gosched()
			}
		}
	}
	d := gang(loop(parts[0]), loop(parts[1]))
	if counter != n {
		panic(fmt.Sprintf("mutex_handoff: counter %d, want %d", counter, n))
	}
	return d
}

// chan_pingpong: one op = one round trip over two unbuffered channels.
func benchChanPingPong(n int) time.Duration {
	ping, pong := make(chan int), make(chan int)
	return gang(
		func() {
			for i := 0; i < n; i++ {
				ping <- i
				<-pong
			}
		},
		func() {
			for i := 0; i < n; i++ {
				pong <- <-ping
			}
		})
}

// chan_buffered_1to1: one sender, one receiver; one op = one item through a
// buffered channel.
func benchChanBuffered1to1(n int) time.Duration {
	ch := make(chan int, chanCap)
	return gang(
		func() {
			for i := 0; i < n; i++ {
				ch <- i
			}
		},
		func() {
			for i := 0; i < n; i++ {
				<-ch
			}
		})
}

// chan_buffered_NtoN: 4 senders and 4 receivers on one buffered channel; one
// op = one item, counted over all senders. Every receiver takes a fixed
// share, so no close/termination protocol sits in the timed region.
func benchChanBufferedNtoN(n int) time.Duration {
	const senders, receivers = 4, 4
	ch := make(chan int, chanCap)
	var fns []func()
	for _, k := range split(n, senders) {
		k := k
		fns = append(fns, func() {
			for i := 0; i < k; i++ {
				ch <- i
			}
		})
	}
	for _, k := range split(n, receivers) {
		k := k
		fns = append(fns, func() {
			for i := 0; i < k; i++ {
				<-ch
			}
		})
	}
	return gang(fns...)
}

// feed returns a sender that spreads n items round-robin over chans. A
// wrapping index rather than i%len avoids a division per item.
func feed(n int, chans []chan int) func() {
	return func() {
		j := 0
		for i := 0; i < n; i++ {
			chans[j] <- i
			if j++; j == len(chans) {
				j = 0
			}
		}
	}
}

func makeChans(k int) []chan int {
	chans := make([]chan int, k)
	for i := range chans {
		chans[i] = make(chan int, chanCap)
	}
	return chans
}

// select_2: a receiver selecting over 2 buffered channels fed round-robin by
// one sender; one op = one item received. The select must be a literal
// select statement (reflect.Select would measure reflection instead).
func benchSelect2(n int) time.Duration {
	c := makeChans(2)
	return gang(feed(n, c), func() {
		for i := 0; i < n; i++ {
			select {
			case <-c[0]:
			case <-c[1]:
			}
		}
	})
}

// select_8: as select_2 with 8 channels.
func benchSelect8(n int) time.Duration {
	c := makeChans(8)
	return gang(feed(n, c), func() {
		for i := 0; i < n; i++ {
			select {
			case <-c[0]:
			case <-c[1]:
			case <-c[2]:
			case <-c[3]:
			case <-c[4]:
			case <-c[5]:
			case <-c[6]:
			case <-c[7]:
			}
		}
	})
}

// runOnce starts each run from a collected heap, as the testing package
// does, so garbage left by a previous run is not charged to this one.
func runOnce(b benchmark, n int) time.Duration {
	runtime.GC()
	return b.run(n)
}

// calibrate finds an iteration count whose run lasts at least benchtime,
// with the growth rule of Go's testing package (B.launch): predict from the
// last run, overshoot by 20%, grow at least by one and at most 100x.
func calibrate(b benchmark, benchtime time.Duration) int {
	n := 1
	d := runOnce(b, n)
	for d < benchtime && n < maxIterations {
		last := n
		prevns := d.Nanoseconds()
		if prevns <= 0 {
			prevns = 1
		}
		next := benchtime.Nanoseconds() * int64(last) / prevns
		next += next / 5
		next = min64(next, 100*int64(last))
		next = max64(next, int64(last)+1)
		next = min64(next, maxIterations)
		n = int(next)
		d = runOnce(b, n)
	}
	return n
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

type result struct {
	Name       string  `json:"name"`
	Procs      int     `json:"procs"`
	NsPerOp    float64 `json:"ns_per_op"`
	Iterations int     `json:"iterations"`
}

// parseProcs reads a comma list of GOMAXPROCS values, dropping duplicates so
// that the default "1,NumCPU" on a 1-CPU machine does not run twice.
func parseProcs(s string) ([]int, error) {
	var procs []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 {
			return nil, fmt.Errorf("bad -procs value %q", f)
		}
		if !seen[p] {
			seen[p] = true
			procs = append(procs, p)
		}
	}
	if len(procs) == 0 {
		return nil, fmt.Errorf("-procs is empty")
	}
	return procs, nil
}

func main() {
	fs := flag.NewFlagSet("go_peer", flag.ExitOnError)
	procsFlag := fs.String("procs", fmt.Sprintf("1,%d", runtime.NumCPU()), "comma list of GOMAXPROCS values")
	reps := fs.Int("reps", 5, "repetitions per benchmark; the median is reported")
	only := fs.String("only", "", "run only benchmarks whose name matches this regexp")
	benchtime := fs.Duration("benchtime", 200*time.Millisecond, "target duration of one repetition")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: go_peer [-procs 1,%d] [-reps 5] [-only REGEXP] [-benchtime 200ms]\n\n", runtime.NumCPU())
		fmt.Fprintf(w, "Go reference for gort's runtime micro-benchmarks. Prints one JSON object per\n")
		fmt.Fprintf(w, "line to stdout: {\"name\", \"procs\", \"ns_per_op\" (median over reps), \"iterations\"};\n")
		fmt.Fprintf(w, "progress goes to stderr.\n\nbenchmarks:")
		for _, b := range benchmarks {
			fmt.Fprintf(w, " %s", b.name)
		}
		fmt.Fprintf(w, "\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "go_peer: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		os.Exit(2)
	}

	procs, err := parseProcs(*procsFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_peer: %v\n", err)
		os.Exit(2)
	}
	if *reps < 1 {
		fmt.Fprintf(os.Stderr, "go_peer: -reps must be >= 1\n")
		os.Exit(2)
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_peer: bad -only: %v\n", err)
		os.Exit(2)
	}

	enc := json.NewEncoder(os.Stdout)
	for _, p := range procs {
		runtime.GOMAXPROCS(p)
		for _, b := range benchmarks {
			if !filter.MatchString(b.name) {
				continue
			}
			// The calibration runs double as warm-up; the reported reps
			// all use the same n so their medians are comparable.
			n := calibrate(b, *benchtime)
			samples := make([]float64, *reps)
			for i := range samples {
				samples[i] = float64(runOnce(b, n).Nanoseconds()) / float64(n)
			}
			med := median(samples)
			fmt.Fprintf(os.Stderr, "go_peer: %-20s procs=%d n=%d ns/op=%s median=%.1f\n",
				b.name, p, n, formatSamples(samples), med)
			r := result{Name: b.name, Procs: p, NsPerOp: math.Round(med*1000) / 1000, Iterations: n}
			if err := enc.Encode(r); err != nil {
				fmt.Fprintf(os.Stderr, "go_peer: %v\n", err)
				os.Exit(1)
			}
		}
	}
}

func formatSamples(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
