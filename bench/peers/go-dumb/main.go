// Command go-dumb is the Go peer of gort's DUMB servers: one goroutine per
// connection, written as straight-line blocking code, implementing
// docs/PROTOCOL.md exactly (same limits, same replies). It is what a Go
// programmer would write, and what dumb_fiber is measured against.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	maxLine   = 1024
	maxWait   = 60000
	maxBurn   = 10000
	maxStream = 1 << 30
	chunk     = 64 * 1024
)

var streamChunk = func() []byte {
	b := make([]byte, chunk)
	for i := range b {
		b[i] = 'A'
	}
	return b
}()

// burnLevel recurses n levels deep with a 256-byte array per level, like the
// C++ servers' dumb::burn: the array is written before and read after the
// recursive call, so neither can be optimised away.
//
//go:noinline
func burnLevel(n uint32) uint64 {
	var frame [256]byte
	frame[n%256] = byte(n)
	if n == 0 {
		return 0
	}
	r := burnLevel(n-1) + uint64(n)
	if frame[n%256] != byte(n) {
		panic("corrupted frame")
	}
	return r
}

// readLine returns the next request line without its "\n" (and one "\r"
// before it), or tooLong=true after discarding a line over maxLine bytes.
func readLine(r *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		part, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, false, err
		}
		if !tooLong {
			buf = append(buf, part...)
			// 1024 bytes plus a possible "\r" that ReadLine left in place.
			if len(buf) > maxLine+1 || (len(buf) == maxLine+1 && buf[maxLine] != '\r') {
				tooLong, buf = true, nil
			}
		}
		if !isPrefix {
			break
		}
	}
	if tooLong {
		return nil, true, nil
	}
	// ReadLine strips "\r\n" as a pair; a lone trailing "\r" before "\n" is
	// already gone. Enforce the limit on what remains.
	if len(buf) > maxLine {
		return nil, true, nil
	}
	return buf, false, nil
}

func parseArg(arg []byte, limit uint64) (uint64, string) {
	if len(arg) == 0 {
		return 0, "missing argument"
	}
	digits := arg
	negative := false
	if arg[0] == '-' && len(arg) > 1 {
		negative, digits = true, arg[1:]
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, "not a number"
		}
	}
	if negative {
		return 0, "out of range"
	}
	v, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil || v > limit {
		return 0, "out of range"
	}
	return v, ""
}

func serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 4096)
	w := bufio.NewWriterSize(conn, 4096)
	for {
		// Flush replies before blocking for more input (pipelined requests
		// already buffered are answered first).
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
		line, tooLong, err := readLine(r)
		if err != nil {
			w.Flush()
			return
		}
		if tooLong {
			w.WriteString("ERROR line too long\n")
			continue
		}
		cmd, arg, hasArg := line, []byte(nil), false
		for i, c := range line {
			if c == ' ' {
				cmd, arg, hasArg = line[:i], line[i+1:], true
				break
			}
		}
		switch string(cmd) {
		case "PING":
			if hasArg {
				w.WriteString("ERROR unexpected argument\n")
			} else {
				w.WriteString("PONG\n")
			}
		case "WAIT", "BURN", "STREAM":
			limit := map[string]uint64{"WAIT": maxWait, "BURN": maxBurn, "STREAM": maxStream}[string(cmd)]
			v, reason := parseArg(arg, limit)
			if reason != "" {
				w.WriteString("ERROR " + reason + "\n")
				continue
			}
			switch string(cmd) {
			case "WAIT":
				w.Flush()
				time.Sleep(time.Duration(v) * time.Millisecond) // finished even when stopping (main bounds the drain)
				w.WriteString("DONE\n")
			case "BURN":
				fmt.Fprintf(w, "RESULT %d\n", burnLevel(uint32(v)))
			case "STREAM":
				for left := v; left > 0; {
					n := uint64(chunk)
					if left < n {
						n = left
					}
					if _, err := w.Write(streamChunk[:n]); err != nil {
						return
					}
					left -= n
				}
				w.WriteString("DONE\n")
			}
		default:
			w.WriteString("UNKNOWN_COMMAND\n")
		}
	}
}

// conns tracks the open connections so that a stop can close the idle ones.
type conns struct {
	mu       sync.Mutex
	open     map[net.Conn]struct{} // guarded by mu
	stopping bool                  // guarded by mu
}

// add registers c; false when the server is already stopping.
func (cs *conns) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.stopping {
		return false
	}
	cs.open[c] = struct{}{}
	return true
}

func (cs *conns) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.open, c)
	cs.mu.Unlock()
}

// stop makes every pending and future read fail at once: an idle connection
// (blocked reading) closes now, a busy one after the reply in progress.
func (cs *conns) stop() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.stopping = true
	for c := range cs.open {
		c.SetReadDeadline(time.Unix(1, 0))
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on (IPv4)")
	port := flag.Int("port", 8090, "TCP port (0 picks a free port)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go-dumb [--host ADDR] [--port N]\n\nDUMB protocol server (docs/PROTOCOL.md), a goroutine per connection.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if ip := net.ParseIP(*host); flag.NArg() != 0 || *port < 0 || *port > 65535 || ip == nil || ip.To4() == nil {
		flag.Usage()
		os.Exit(2)
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-dumb: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("go-dumb listening on %s\n", ln.Addr())
	// Stop like the C++ servers (apps/dumb/server_main.h): on SIGINT/SIGTERM
	// stop accepting, let each connection finish the request in progress,
	// close idle ones at once, and exit 0 within 2 s whatever the clients do.
	open := &conns{open: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		ln.Close()
		open.stop()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			// EMFILE and friends: back off and keep serving.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !open.add(conn) {
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer open.remove(conn)
			serve(conn)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}
