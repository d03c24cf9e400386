// Command go-fairness is the Go twin of bench/fairness/fairness_ticker.cpp:
// does a 10 ms ticker keep ticking while GOMAXPROCS goroutines block in a
// system call or compute? Same flags, same JSON line.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	offender := flag.String("offender", "", "syscall (block in nanosleep) or busy (spin on the clock)")
	workers := flag.Int("workers", 1, "GOMAXPROCS, and the number of offenders")
	holdMs := flag.Int("hold-ms", 1000, "how long each offender holds its thread")
	windowMs := flag.Int("window-ms", 1200, "how long ticks are counted from the offenders' start")
	flag.Parse()
	if (*offender != "syscall" && *offender != "busy") || *workers <= 0 || *holdMs <= 0 || *windowMs <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*workers)

	var count int64
	var stop int32
	var tickerDone, offenders sync.WaitGroup
	tickerDone.Add(1)
	go func() {
		for atomic.LoadInt32(&stop) == 0 {
			time.Sleep(10 * time.Millisecond)
			atomic.AddInt64(&count, 1)
		}
		tickerDone.Done()
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	before := atomic.LoadInt64(&count)
	hold := time.Duration(*holdMs) * time.Millisecond
	offenders.Add(*workers)
	for i := 0; i < *workers; i++ {
		go func() {
			if *offender == "syscall" {
				ts := syscall.NsecToTimespec(int64(hold))
				syscall.Nanosleep(&ts, nil) // a raw system call, as usleep in the C++ twin
			} else {
				for time.Since(start) < hold {
				}
			}
			offenders.Done()
		}()
	}
	time.Sleep(time.Until(start.Add(time.Duration(*windowMs) * time.Millisecond)))
	ticks := atomic.LoadInt64(&count) - before
	offenders.Wait()
	atomic.StoreInt32(&stop, 1)
	tickerDone.Wait()
	fmt.Printf("{\"runtime\":\"go\",\"offender\":%q,\"workers\":%d,\"hold_ms\":%d,\"window_ms\":%d,\"ticks\":%d}\n",
		*offender, *workers, *holdMs, *windowMs, ticks)
}
