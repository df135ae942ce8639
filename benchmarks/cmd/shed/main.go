// Command shed measures a server offered more than its capacity, with the
// library's load-shedding middleware (package shed), with failsafe-go's
// adaptive limiter as http.Handler middleware, and with none: the goodput
// of admitted requests, their p99 latency, the success of health checks,
// and whether every shed response says when to retry.
//
// The service does its work in a pool of -c workers, each request taking
// -service; requests beyond the pool wait for a worker without bound, as a
// server without admission control does (waiting on a lock, a connection
// pool, a CPU). Its capacity is c / service requests per second. Clients
// send -factor times that, open loop (a request every 1/rate, whatever
// the answers), each giving up after -timeout; health checks (GET
// /healthz, 10 per second) need no worker. Each configuration runs -runs
// times; the table gives the median and the spread (min–max).
//
//	go run ./cmd/shed               # from the benchmarks module
//	go run ./cmd/shed -duration 5s -runs 1
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/resilience-go/resilience/shed"
)

var (
	workers  = flag.Int("c", 4, "workers of the service: requests it serves at once")
	service  = flag.Duration("service", 25*time.Millisecond, "time a request holds a worker")
	factor   = flag.Float64("factor", 4, "offered load, in multiples of the capacity")
	duration = flag.Duration("duration", 10*time.Second, "length of a run")
	timeout  = flag.Duration("timeout", time.Second, "client timeout of a request")
	runs     = flag.Int("runs", 3, "runs per configuration")
	maxWait  = flag.Duration("maxwait", 25*time.Millisecond, "maximum queue wait (shed and failsafe-go)")
)

// result is what one run measured.
type result struct {
	goodput    float64 // 2xx answers of /work in time, per second, as a fraction of the capacity
	p99        time.Duration
	health     float64 // fraction of health checks answered 200 in time
	shed       int     // /work answered with a rejection status
	retryAfter float64 // fraction of rejections with Retry-After
	timedOut   int     // /work requests the client gave up on
	sent       int
}

type config struct {
	name string
	wrap func(http.Handler) http.Handler
}

func main() {
	flag.Parse()
	capacity := float64(*workers) / service.Seconds()
	fmt.Printf("service: %d workers × %v = %.0f req/s; offered %.0f req/s (%.1f×) for %v, client timeout %v, %d runs\n\n",
		*workers, *service, capacity, capacity**factor, *factor, *duration, *timeout, *runs)
	health := func(r *http.Request) bool { return r.URL.Path == "/healthz" }
	configs := []config{
		{"none", func(h http.Handler) http.Handler { return h }},
		{"resilience shed (Fixed(c), queue 2c, maxwait)", func(h http.Handler) http.Handler {
			s := shed.New(shed.Fixed(*workers), shed.WithQueue(2**workers, *maxWait))
			return shed.Middleware(s, shed.WithHealthCheck(health))(h)
		}},
		{"failsafe-go adaptivelimiter (queueing, maxwait)", func(h http.Handler) http.Handler {
			lim := adaptivelimiter.NewBuilder[*http.Response]().
				WithQueueing(2, 3).
				WithMaxWaitTime(*maxWait).
				Build()
			return failsafehttp.NewHandler(h, lim)
		}},
	}
	fmt.Printf("| %-48s | %-22s | %-26s | %-16s | %-16s | %-20s | %s |\n", "server middleware", "goodput (of capacity)", "admitted p99", "health checks", "shed with Retry-After", "shed / timed out", "sent")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|%s|\n", dash(50), dash(24), dash(28), dash(18), dash(18), dash(22), dash(6))
	for _, c := range configs {
		var rs []result
		for range *runs {
			rs = append(rs, run(c, capacity))
		}
		fmt.Printf("| %-48s | %-22s | %-26s | %-16s | %-16s | %-20s | %d |\n", c.name,
			spread(rs, func(r result) float64 { return r.goodput * 100 }, "%.1f%%"),
			spreadD(rs, func(r result) time.Duration { return r.p99 }),
			spread(rs, func(r result) float64 { return r.health * 100 }, "%.1f%%"),
			spread(rs, func(r result) float64 { return r.retryAfter * 100 }, "%.0f%%"),
			fmt.Sprintf("%d / %d", median(rs, func(r result) float64 { return float64(r.shed) }).shed, median(rs, func(r result) float64 { return float64(r.timedOut) }).timedOut),
			rs[0].sent)
	}
}

func dash(n int) string { return fmt.Sprintf("%s", slices.Repeat([]byte("-"), n)) }

// median returns the run with the median value of f.
func median(rs []result, f func(result) float64) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case f(a) < f(b):
			return -1
		case f(a) > f(b):
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func spread(rs []result, f func(result) float64, format string) string {
	lo, hi := f(rs[0]), f(rs[0])
	for _, r := range rs {
		lo, hi = min(lo, f(r)), max(hi, f(r))
	}
	m := f(median(rs, f))
	if len(rs) == 1 {
		return fmt.Sprintf(format, m)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", m, lo, hi)
}

func spreadD(rs []result, f func(result) time.Duration) string {
	ms := func(r result) float64 { return float64(f(r)) / float64(time.Millisecond) }
	return spread(rs, ms, "%.0fms")
}

// run serves the service through c and offers it factor × capacity.
func run(c config, capacity float64) result {
	pool := make(chan struct{}, *workers)
	stop := make(chan struct{}) // ends the backlog once the run is measured
	mux := http.NewServeMux()
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		select {
		case pool <- struct{}{}: // a worker, waited for without bound
		case <-stop:
			return
		}
		time.Sleep(*service)
		<-pool
		io.WriteString(w, "done")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewServer(c.wrap(mux))
	defer srv.Close()
	defer close(stop)
	tr := &http.Transport{MaxIdleConnsPerHost: 4096, IdleConnTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	var (
		mu                      sync.Mutex
		lat                     []time.Duration
		ok, shedN, withRA, tout int
		healthOK, healthN       atomic.Int64
		wg                      sync.WaitGroup
	)
	send := func(path string) (status int, ra bool, d time.Duration, err error) {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, false, 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After") != "", time.Since(start), err
	}
	rate := capacity * *factor
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	n := int(duration.Seconds() * rate)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if i%int(rate/10) == 0 {
			wg.Go(func() {
				status, _, _, err := send("/healthz")
				healthN.Add(1)
				if err == nil && status == 200 {
					healthOK.Add(1)
				}
			})
		}
		wg.Go(func() {
			status, ra, d, err := send("/work")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				tout++
			case status == 200:
				lat = append(lat, d)
				if time.Since(start) <= *duration {
					ok++ // goodput counts the answers within the run
				}
			default:
				shedN++
				if ra {
					withRA++
				}
			}
		})
	}
	wg.Wait()
	r := result{
		goodput:  float64(ok) / duration.Seconds() / capacity,
		health:   float64(healthOK.Load()) / float64(max(healthN.Load(), 1)),
		shed:     shedN,
		timedOut: tout,
		sent:     n,
	}
	if shedN > 0 {
		r.retryAfter = float64(withRA) / float64(shedN)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p99 = lat[len(lat)*99/100]
	}
	fmt.Fprintf(os.Stderr, "%s: %+v\n", c.name, r)
	return r
}
