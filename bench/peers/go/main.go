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
	"runtime/debug"
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

// ---- fan-out: one goroutine spawns N before any finishes, then waits ----
//
// Same workloads, sizes and iteration counts as bench/runtime/bench_fanout.cpp:
//   fanout_exit_<N>   spawn N goroutines that finish at once (WaitGroup)
//   fanout_park_<N>   spawn N goroutines that park on one channel, wait until
//                     all are parked, close it, wait for all
//   fanout_sleep_<N>  spawn N goroutines that each sleep 10 ms, wait for all
// One op = one goroutine. Extra fields: peak_rss_kib (VmHWM, reset through
// /proc/self/clear_refs at the start of each rep, after debug.FreeOSMemory;
// Go keeps the goroutines of a peak for reuse, so bench/run_micro.py runs
// each fan-out benchmark in a process of its own), rss_kib_per_fiber
// (park; the first round's: later ones reuse what it made resident),
// pagetable_kib_per_fiber (park, likewise),
// overshoot_{mean,p99,max}_us (sleep, over all rounds).

const fanoutSleep = 10 * time.Millisecond

type fanoutKind int

const (
	fanoutExit fanoutKind = iota
	fanoutPark
	fanoutSleepKind
)

type fanout struct {
	name string
	kind fanoutKind
	n    int
}

var fanouts = func() []fanout {
	var out []fanout
	kinds := []struct {
		name string
		kind fanoutKind
	}{{"fanout_exit", fanoutExit}, {"fanout_park", fanoutPark}, {"fanout_sleep", fanoutSleepKind}}
	sizes := []struct {
		label string
		n     int
	}{{"1k", 1000}, {"10k", 10000}, {"100k", 100000}, {"1M", 1000000}}
	for _, k := range kinds {
		for _, s := range sizes {
			out = append(out, fanout{k.name + "_" + s.label, k.kind, s.n})
		}
	}
	return out
}()

// fanoutIterations: about 200 000 goroutines per run, at most 50 rounds of
// 10 ms sleeps (iterations_for in bench_fanout.cpp).
func fanoutIterations(f fanout) int {
	k := 200000 / f.n
	if k < 1 {
		k = 1
	}
	if f.kind == fanoutSleepKind && k > 50 {
		k = 50
	}
	return k
}

func statusKiB(field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line[len(field)+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v
			}
		}
	}
	return -1
}

func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func runFanoutExit(n int) time.Duration {
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return time.Since(t0)
}

func runFanoutPark(n int) (time.Duration, float64, float64) {
	rss0, pte0 := statusKiB("VmRSS"), statusKiB("VmPTE")
	t0 := time.Now()
	gate := make(chan struct{})
	var parked, finished sync.WaitGroup
	parked.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			parked.Done()
			<-gate
			finished.Done()
		}()
	}
	parked.Wait()
	beforeRelease := time.Since(t0)
	perFiber := (statusKiB("VmRSS") - rss0) / float64(n)
	pagetables := (statusKiB("VmPTE") - pte0) / float64(n)
	t1 := time.Now()
	close(gate)
	finished.Wait()
	return beforeRelease + time.Since(t1), perFiber, pagetables
}

func runFanoutSleep(n int, overshoot []time.Duration) time.Duration {
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		i := i
		go func() {
			start := time.Now()
			time.Sleep(fanoutSleep)
			overshoot[i] = time.Since(start) - fanoutSleep
			wg.Done()
		}()
	}
	wg.Wait()
	return time.Since(t0)
}

type fanoutResult struct {
	Name            string  `json:"name"`
	Procs           int     `json:"procs"`
	NsPerOp         float64 `json:"ns_per_op"`
	Iterations      int     `json:"iterations"`
	PeakRSSKiB      float64 `json:"peak_rss_kib"`
	RSSKiBPerFiber  float64 `json:"rss_kib_per_fiber,omitempty"`
	PTEKiBPerFiber  float64 `json:"pagetable_kib_per_fiber,omitempty"`
	OvershootMeanUs float64 `json:"overshoot_mean_us,omitempty"`
	OvershootP99Us  float64 `json:"overshoot_p99_us,omitempty"`
	OvershootMaxUs  float64 `json:"overshoot_max_us,omitempty"`
}

// runFanout measures one benchmark once (one rep): iterations fan-outs of
// n, ns per goroutine over all of them.
func runFanout(f fanout, procs int) fanoutResult {
	debug.FreeOSMemory()
	resetPeakRSS()
	iters := fanoutIterations(f)
	var total time.Duration
	var perFiber, pagetables []float64
	var overshoots []time.Duration
	for it := 0; it < iters; it++ {
		switch f.kind {
		case fanoutExit:
			total += runFanoutExit(f.n)
		case fanoutPark:
			d, kib, pte := runFanoutPark(f.n)
			total += d
			perFiber = append(perFiber, kib)
			pagetables = append(pagetables, pte)
		case fanoutSleepKind:
			o := make([]time.Duration, f.n)
			total += runFanoutSleep(f.n, o)
			overshoots = append(overshoots, o...)
		}
	}
	r := fanoutResult{Name: f.name, Procs: procs, Iterations: iters,
		NsPerOp:    float64(total.Nanoseconds()) / float64(iters*f.n),
		PeakRSSKiB: statusKiB("VmHWM")}
	if len(perFiber) > 0 {
		r.RSSKiBPerFiber = perFiber[0] // later rounds reuse memory the first one made resident
		r.PTEKiBPerFiber = pagetables[0]
	}
	if len(overshoots) > 0 {
		sort.Slice(overshoots, func(a, b int) bool { return overshoots[a] < overshoots[b] })
		var sum float64
		for _, o := range overshoots {
			sum += float64(o.Nanoseconds())
		}
		r.OvershootMeanUs = sum / float64(len(overshoots)) / 1e3
		r.OvershootP99Us = float64(overshoots[len(overshoots)*99/100].Nanoseconds()) / 1e3
		r.OvershootMaxUs = float64(overshoots[len(overshoots)-1].Nanoseconds()) / 1e3
	}
	return r
}

// medianFanout reports, per field, the median over the reps.
func medianFanout(rs []fanoutResult) fanoutResult {
	pick := func(get func(fanoutResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = get(r)
		}
		return median(xs)
	}
	out := rs[0]
	out.NsPerOp = math.Round(pick(func(r fanoutResult) float64 { return r.NsPerOp })*1000) / 1000
	out.PeakRSSKiB = pick(func(r fanoutResult) float64 { return r.PeakRSSKiB })
	out.RSSKiBPerFiber = pick(func(r fanoutResult) float64 { return r.RSSKiBPerFiber })
	out.PTEKiBPerFiber = pick(func(r fanoutResult) float64 { return r.PTEKiBPerFiber })
	out.OvershootMeanUs = pick(func(r fanoutResult) float64 { return r.OvershootMeanUs })
	out.OvershootP99Us = pick(func(r fanoutResult) float64 { return r.OvershootP99Us })
	out.OvershootMaxUs = pick(func(r fanoutResult) float64 { return r.OvershootMaxUs })
	return out
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
	skip := fs.String("skip", "", "skip benchmarks whose name matches this regexp")
	benchtime := fs.Duration("benchtime", 200*time.Millisecond, "target duration of one repetition")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: go_peer [-procs 1,%d] [-reps 5] [-only REGEXP] [-skip REGEXP] [-benchtime 200ms]\n\n", runtime.NumCPU())
		fmt.Fprintf(w, "Go reference for gort's runtime micro-benchmarks. Prints one JSON object per\n")
		fmt.Fprintf(w, "line to stdout: {\"name\", \"procs\", \"ns_per_op\" (median over reps), \"iterations\"};\n")
		fmt.Fprintf(w, "progress goes to stderr.\n\nbenchmarks:")
		for _, b := range benchmarks {
			fmt.Fprintf(w, " %s", b.name)
		}
		for _, f := range fanouts {
			fmt.Fprintf(w, " %s", f.name)
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
	onlyRe, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_peer: bad -only: %v\n", err)
		os.Exit(2)
	}
	skipRe, err := regexp.Compile(*skip)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_peer: bad -skip: %v\n", err)
		os.Exit(2)
	}
	selected := func(name string) bool {
		return onlyRe.MatchString(name) && (*skip == "" || !skipRe.MatchString(name))
	}

	enc := json.NewEncoder(os.Stdout)
	for _, p := range procs {
		runtime.GOMAXPROCS(p)
		for _, b := range benchmarks {
			if !selected(b.name) {
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
		for _, f := range fanouts {
			if !selected(f.name) {
				continue
			}
			rs := make([]fanoutResult, *reps)
			for i := range rs {
				rs[i] = runFanout(f, p)
			}
			r := medianFanout(rs)
			fmt.Fprintf(os.Stderr, "go_peer: %-20s procs=%d n=%d ns/op=%.1f peak_rss_kib=%.0f\n",
				f.name, p, f.n, r.NsPerOp, r.PeakRSSKiB)
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
