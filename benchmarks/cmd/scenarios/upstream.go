package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/resilience-go/resilience/benchmarks/internal/fifo"
)

// The upstream runs in a process of its own (this binary, re-executed with
// upstreamFlag as its only argument), so that it keeps running while the
// client process is stopped, and so that the client's load and the
// upstream's work are scheduled as two processes, as they would be in
// production. The protocol, one JSON line each way over stdin and stdout:
//
//	client → upstream: upstreamSpec
//	upstream → client: upstreamHello (its address, and when the load starts)
//	client → upstream: any line, or end of input, once every call is done
//	upstream → client: upstreamStats, then it exits
//
// The upstream plays the scenario by its own clock from the start time it
// announced: the fault window is [Pre, Pre+Fault) after it.
const upstreamFlag = "-upstream-child"

// bucketWidth is the width of the time buckets of every series.
const bucketWidth = 250 * time.Millisecond

type upstreamSpec struct {
	Scenario  scenario `json:"scenario"`
	Seed      uint64   `json:"seed"`
	ClientPID int      `json:"client_pid"`
}

type upstreamHello struct {
	Addr  string `json:"addr"`
	Start int64  `json:"start_unix_nano"` // when the load starts, wall clock
}

type upstreamStats struct {
	Arrivals []int `json:"arrivals"` // requests per bucket from the start
	Conns    int   `json:"conns"`    // TCP connections accepted
	// FaultArrivals counts the requests that arrived in the fault window
	// [Pre, Pre+Fault) by the upstream's clock.
	FaultArrivals int           `json:"fault_arrivals"`
	FaultStart    time.Duration `json:"fault_start"`
	FaultEnd      time.Duration `json:"fault_end"` // as played, from the start
	// Overload: the requests the naive upstream served from the start of
	// the fault to the end of the run, and how many of them it served
	// after their caller had given up.
	Served int64  `json:"served,omitempty"`
	Wasted int64  `json:"wasted,omitempty"`
	Err    string `json:"err,omitempty"`
}

type upstream struct {
	spec  upstreamSpec
	start time.Time
	srv   *http.Server
	conns atomic.Int64
	queue *fifo.Queue // overload only

	servedAtFault, wastedAtFault int64 // overload: the queue's counts when the fault started

	mu       sync.Mutex // guards the fields below
	arrivals []int
	inFault  int
	rng      *rand.Rand
	ln       net.Listener
	open     map[net.Conn]struct{}
}

// runUpstream is the upstream process's main.
func runUpstream() {
	if err := upstreamMain(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func upstreamMain(in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading spec: %w", err)
	}
	u := &upstream{open: map[net.Conn]struct{}{}}
	if err := json.Unmarshal(line, &u.spec); err != nil {
		return fmt.Errorf("parsing spec: %w", err)
	}
	sc := u.spec.Scenario
	u.rng = rand.New(rand.NewPCG(u.spec.Seed, 0x5ce1a710))

	// Whatever happens, a stopped client is continued before this process
	// goes away.
	resume := func() {
		if sc.Kind == faultStarved {
			syscall.Kill(u.spec.ClientPID, syscall.SIGCONT)
		}
	}
	defer resume()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		resume()
		os.Exit(2)
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	u.ln = ln
	if sc.Kind == faultOverload {
		u.queue = fifo.New(sc.Workers, max(sc.Workers, sc.FaultWorkers), sc.Delay)
	}
	u.srv = &http.Server{Handler: u, ConnState: u.connState, ReadHeaderTimeout: 10 * time.Second}
	go u.srv.Serve(ln)

	u.start = time.Now().Add(300 * time.Millisecond)
	hello, _ := json.Marshal(upstreamHello{Addr: ln.Addr().String(), Start: u.start.UnixNano()})
	if _, err := fmt.Fprintf(out, "%s\n", hello); err != nil {
		return err
	}

	stats := upstreamStats{FaultStart: sc.Pre, FaultEnd: sc.faultEnd()}
	played := make(chan error, 1)
	switch sc.Kind {
	case faultRefused, faultStarved, faultOverload:
		go func() { played <- u.play(&stats) }()
	default:
		played <- nil // played by the handler, from each request's arrival time
	}

	// The client says it is done, or goes away; either way the run ends,
	// and at the latest some time after the scenario should have.
	done := make(chan struct{})
	go func() {
		r.ReadBytes('\n')
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Until(u.start.Add(sc.total() + 60*time.Second))):
		stats.Err = "the client did not finish in time"
	}
	if err := <-played; err != nil {
		stats.Err = err.Error()
	}
	resume()
	u.srv.Close()
	if u.queue != nil {
		u.queue.Close()
		served, wasted := u.queue.Counts()
		stats.Served, stats.Wasted = served-u.servedAtFault, wasted-u.wastedAtFault
	}

	u.mu.Lock()
	stats.Arrivals, stats.FaultArrivals = u.arrivals, u.inFault
	u.mu.Unlock()
	stats.Conns = int(u.conns.Load())
	b, _ := json.Marshal(stats)
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// play brings the faults that are not a reply to a request: it closes and
// reopens the listener, or stops and continues the client, at the
// scenario's times, and records when it did.
func (u *upstream) play(stats *upstreamStats) error {
	sc := u.spec.Scenario
	time.Sleep(time.Until(u.start.Add(sc.Pre)))
	stats.FaultStart = time.Since(u.start)
	switch sc.Kind {
	case faultOverload:
		u.queue.SetWorkers(sc.FaultWorkers)
		u.servedAtFault, u.wastedAtFault = u.queue.Counts()
		time.Sleep(time.Until(u.start.Add(sc.faultEnd())))
		stats.FaultEnd = time.Since(u.start)
		u.queue.SetWorkers(sc.Workers)
		return nil
	case faultStarved:
		if err := syscall.Kill(u.spec.ClientPID, syscall.SIGSTOP); err != nil {
			return fmt.Errorf("stopping the client: %w", err)
		}
	case faultRefused:
		u.mu.Lock()
		addr := u.ln.Addr().String()
		u.ln.Close()
		for c := range u.open {
			c.Close()
		}
		u.mu.Unlock()
		time.Sleep(time.Until(u.start.Add(sc.faultEnd())))
		stats.FaultEnd = time.Since(u.start)
		var ln net.Listener
		var err error
		for range 50 { // the port is ours; a retry covers a slow release
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("reopening %s: %w", addr, err)
		}
		u.mu.Lock()
		u.ln = ln
		u.mu.Unlock()
		go u.srv.Serve(ln)
		return nil
	}
	time.Sleep(time.Until(u.start.Add(sc.faultEnd())))
	stats.FaultEnd = time.Since(u.start)
	return syscall.Kill(u.spec.ClientPID, syscall.SIGCONT)
}

func (u *upstream) connState(c net.Conn, s http.ConnState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch s {
	case http.StateNew:
		u.conns.Add(1)
		u.open[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(u.open, c)
	}
}

// ServeHTTP counts the request in its bucket and answers as the scenario
// says for the time it arrived.
func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Since(u.start)
	sc := u.spec.Scenario
	inFault := at >= sc.Pre && at < sc.faultEnd()
	var roll float64
	u.mu.Lock()
	i := max(int(at/bucketWidth), 0)
	for len(u.arrivals) <= i {
		u.arrivals = append(u.arrivals, 0)
	}
	u.arrivals[i]++
	if inFault {
		u.inFault++
		roll = u.rng.Float64()
	}
	u.mu.Unlock()

	if inFault {
		switch sc.Kind {
		case faultStatus:
			if roll < sc.Fraction {
				http.Error(w, http.StatusText(sc.Status), sc.Status)
				return
			}
		case faultThrottle:
			if roll < sc.Fraction {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
		case faultOverload:
			// Served below, as before and after the fault, by fewer workers.
		case faultSlow:
			if roll < sc.Fraction {
				t := time.NewTimer(sc.Delay)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
		}
	}
	if u.queue != nil {
		u.queue.Serve(r.Context())
	}
	io.WriteString(w, "ok")
}
