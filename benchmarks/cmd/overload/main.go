// Command overload measures adaptive concurrency limiters against a naive
// upstream, as issue 21 ("Overload") describes, in three scenarios:
//
//   - overload: one FIFO queue, unbounded, fixed service time (20ms), that
//     never checks whether its caller is still there; 200 calls/s offered
//     with a 3s deadline; its capacity (8 workers: 400/s) drops to a
//     quarter of the offered load (1 worker: 50/s) for 8s;
//   - slowtail: the same upstream at full capacity, but every fifth reply
//     takes 2s (outside the queue): nothing is overloaded;
//   - starved: the upstream healthy, the client process stopped for 3.5s
//     (SIGSTOP, SIGCONT) in the middle of the run; the calls that fell due
//     meanwhile start at once when it continues.
//
// Stacks: none (http.DefaultTransport), adaptive (resiliencehttp over
// adaptive.NewKeyed at its defaults), failsafe (failsafe-go's
// adaptivelimiter at its defaults, through failsafehttp).
//
// The upstream runs in this process; the client runs in a child process
// (this binary with -client), so that stopping it leaves the upstream
// running. The child prints one line per call; this process prints one
// line of results per run and a median over runs.
//
//	go run ./cmd/overload -runs 3
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/benchmarks/internal/fifo"
	"github.com/resilience-go/resilience/resiliencehttp"
)

const (
	rate     = 200 // calls a second
	deadline = 3 * time.Second
	service  = 20 * time.Millisecond
	workers  = 8
	bucket   = 100 * time.Millisecond
)

// scenario is a timeline: the fault window is [pre, pre+fault).
type scenario struct {
	name            string
	pre, fault, end time.Duration
}

var scenarios = map[string]scenario{
	"overload": {"overload", 4 * time.Second, 8 * time.Second, 18 * time.Second},
	"slowtail": {"slowtail", 0, 0, 12 * time.Second},
	"starved":  {"starved", 4 * time.Second, 3500 * time.Millisecond, 14 * time.Second},
}

func main() {
	client := flag.Bool("client", false, "run as the client child")
	url := flag.String("url", "", "client: the upstream's URL")
	stack := flag.String("stack", "none", "client: none, adaptive or failsafe")
	start := flag.Int64("start", 0, "client: when to start, Unix nanoseconds")
	dur := flag.Duration("duration", 0, "client: how long to offer load")
	runs := flag.Int("runs", 3, "runs per scenario and stack")
	only := flag.String("scenarios", "overload,slowtail,starved", "scenarios to run")
	stacks := flag.String("stacks", "none,adaptive,failsafe", "stacks to run")
	flag.Parse()
	if *client {
		if err := runClient(*url, *stack, time.Unix(0, *start), *dur); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	for _, name := range strings.Split(*only, ",") {
		sc, ok := scenarios[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown scenario %q\n", name)
			os.Exit(2)
		}
		for _, st := range strings.Split(*stacks, ",") {
			var rs []metrics
			for i := range *runs {
				m, err := runOne(sc, st)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s %s run %d: %v\n", sc.name, st, i+1, err)
					os.Exit(1)
				}
				fmt.Printf("%-8s %-8s run %d: %s\n", sc.name, st, i+1, m)
				rs = append(rs, m)
			}
			fmt.Printf("%-8s %-8s median: %s\n", sc.name, st, medians(rs))
		}
	}
}

// ---- upstream ----

type upstream struct {
	q        *fifo.Queue
	slowTail bool
	n        atomic.Int64
	conns    atomic.Int64
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.slowTail && u.n.Add(1)%5 == 0 {
		time.Sleep(2 * time.Second) // a slow reply that takes no worker
	} else {
		u.q.Serve(r.Context())
	}
	io.WriteString(w, "ok")
}

// ---- one run ----

type call struct {
	start   time.Duration // from the run's start
	latency time.Duration
	ok      bool
}

type metrics struct {
	faultOK    float64 // successes a second that completed during the fault
	faultP99   time.Duration
	wasted     float64 // share of the upstream's work done for callers that gave up
	conns      int64
	recovery   time.Duration // after the fault, until a bucket's calls all succeed again; -1 if never
	success    float64       // share of the calls that succeeded, whole run
	afterFault float64       // share of the calls started after the fault that succeeded
}

func (m metrics) String() string {
	return fmt.Sprintf("fault %.1f ok/s p99 %v | wasted %.1f%% | conns %d | recovery %v | success %.1f%% (after the fault %.1f%%)",
		m.faultOK, m.faultP99.Round(time.Millisecond), 100*m.wasted, m.conns, m.recovery, 100*m.success, 100*m.afterFault)
}

func runOne(sc scenario, stack string) (metrics, error) {
	u := &upstream{q: fifo.New(workers, workers, service), slowTail: sc.name == "slowtail"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return metrics{}, err
	}
	srv := &http.Server{Handler: u, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	defer func() {
		srv.Close()
		u.q.Close()
	}()

	t0 := time.Now().Add(time.Second)
	cmd := exec.Command(os.Args[0], "-client", "-url", "http://"+ln.Addr().String()+"/",
		"-stack", stack, "-start", strconv.FormatInt(t0.UnixNano(), 10), "-duration", sc.end.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return metrics{}, err
	}
	if err := cmd.Start(); err != nil {
		return metrics{}, err
	}
	var calls []call
	read := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var c call
			var ok int
			if _, err := fmt.Sscan(sc.Text(), &c.start, &c.latency, &ok); err != nil {
				read <- err
				return
			}
			c.ok = ok == 1
			calls = append(calls, c)
		}
		read <- sc.Err()
	}()

	// Play the scenario.
	var servedAtFault, wastedAtFault int64
	if sc.fault > 0 {
		time.Sleep(time.Until(t0.Add(sc.pre)))
		switch sc.name {
		case "overload":
			u.q.SetWorkers(1)
		case "starved":
			cmd.Process.Signal(syscall.SIGSTOP)
		}
		servedAtFault, wastedAtFault = u.q.Counts()
		time.Sleep(time.Until(t0.Add(sc.pre + sc.fault)))
		switch sc.name {
		case "overload":
			u.q.SetWorkers(workers)
		case "starved":
			cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	if err := <-read; err != nil {
		return metrics{}, err
	}
	if err := cmd.Wait(); err != nil {
		return metrics{}, err
	}
	served, wasted := u.q.Counts()
	if sc.name == "overload" {
		// The work of the fault and what it left queued.
		served, wasted = served-servedAtFault, wasted-wastedAtFault
	}
	m := measure(sc, calls)
	if served > 0 {
		m.wasted = float64(wasted) / float64(served)
	}
	m.conns = u.conns.Load()
	return m, nil
}

func measure(sc scenario, calls []call) metrics {
	var m metrics
	var lat []time.Duration
	ok, okAfter, after := 0, 0, 0
	faultEnd := sc.pre + sc.fault
	for _, c := range calls {
		if c.ok {
			ok++
		}
		if end := c.start + c.latency; sc.fault > 0 && c.ok && end >= sc.pre && end < faultEnd {
			lat = append(lat, c.latency)
		}
		if c.start >= faultEnd {
			after++
			if c.ok {
				okAfter++
			}
		}
	}
	m.success = float64(ok) / float64(max(len(calls), 1))
	m.afterFault = float64(okAfter) / float64(max(after, 1))
	if sc.fault > 0 {
		m.faultOK = float64(len(lat)) / sc.fault.Seconds()
		m.faultP99 = percentile(lat, 0.99)
	}
	m.recovery = recovery(calls, faultEnd, sc.end)
	return m
}

// recovery returns how long after faultEnd the calls started in every
// bucket from then on all succeeded, or -1 if they never did.
func recovery(calls []call, faultEnd, end time.Duration) time.Duration {
	n := int((end - faultEnd + bucket - 1) / bucket)
	total, ok := make([]int, n), make([]int, n)
	for _, c := range calls {
		if c.start < faultEnd || c.start >= end {
			continue
		}
		i := int((c.start - faultEnd) / bucket)
		total[i]++
		if c.ok {
			ok[i]++
		}
	}
	last := -1 // the last bucket with a failure
	for i := range n {
		if ok[i] < total[i] {
			last = i
		}
	}
	if last == n-1 {
		return -1
	}
	return time.Duration(last+1) * bucket
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(int(float64(len(ds))*p), len(ds)-1)]
}

// medians returns the median of each figure over runs, with its range.
func medians(rs []metrics) string {
	med := func(f func(metrics) float64) (float64, float64, float64) {
		vs := make([]float64, len(rs))
		for i, r := range rs {
			vs[i] = f(r)
		}
		slices.Sort(vs)
		return vs[len(vs)/2], vs[0], vs[len(vs)-1]
	}
	var b strings.Builder
	for _, f := range []struct {
		name string
		f    func(metrics) float64
		unit string
		k    float64
	}{
		{"fault ok/s", func(m metrics) float64 { return m.faultOK }, "", 1},
		{"fault p99", func(m metrics) float64 { return m.faultP99.Seconds() }, "ms", 1000},
		{"wasted", func(m metrics) float64 { return m.wasted }, "%", 100},
		{"conns", func(m metrics) float64 { return float64(m.conns) }, "", 1},
		{"recovery", func(m metrics) float64 { return m.recovery.Seconds() }, "ms", 1000},
		{"success", func(m metrics) float64 { return m.success }, "%", 100},
		{"after fault", func(m metrics) float64 { return m.afterFault }, "%", 100},
	} {
		md, lo, hi := med(f.f)
		fmt.Fprintf(&b, "%s %.1f%s [%.1f–%.1f] | ", f.name, md*f.k, f.unit, lo*f.k, hi*f.k)
	}
	return strings.TrimSuffix(b.String(), " | ")
}

// ---- client ----

func runClient(url, stack string, start time.Time, d time.Duration) error {
	var rt http.RoundTripper
	switch stack {
	case "none":
		rt = http.DefaultTransport
	case "adaptive":
		rt = resiliencehttp.NewTransport(nil, adaptive.NewKeyed())
	case "failsafe":
		rt = failsafehttp.NewRoundTripper(nil, adaptivelimiter.NewWithDefaults[*http.Response]())
	default:
		return fmt.Errorf("unknown stack %q", stack)
	}
	c := &http.Client{Transport: rt}
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
	)
	time.Sleep(time.Until(start))
	// Open loop: a call starts when it is due, however many are still
	// running. Calls that fell due while this process was stopped start at
	// once when it continues, with what is left of their deadline, as the
	// requests a stalled service accepted would; latency counts from when
	// a call fell due.
	for i := 0; ; i++ {
		due := time.Duration(i) * time.Second / rate
		if due >= d {
			break
		}
		time.Sleep(time.Until(start.Add(due)))
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), start.Add(due+deadline))
			defer cancel()
			ok := false
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			resp, err := c.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok = err == nil && resp.StatusCode == http.StatusOK
			} else if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, adaptive.ErrLimited) && !errors.Is(err, adaptivelimiter.ErrExceeded) {
				fmt.Fprintln(os.Stderr, "client:", err)
			}
			mu.Lock()
			calls = append(calls, call{due, time.Since(start) - due, ok})
			mu.Unlock()
		})
	}
	wg.Wait()
	w := bufio.NewWriter(os.Stdout)
	for _, c := range calls {
		ok := 0
		if c.ok {
			ok = 1
		}
		fmt.Fprintf(w, "%d %d %d\n", c.start, c.latency, ok)
	}
	return w.Flush()
}
