// Command outage shows a circuit breaker at work while a dependency goes
// down and comes back.
//
// It starts an upstream HTTP server on the loopback interface and a few
// clients that call it through resiliencehttp.Standard: total timeout,
// retries with backoff, a per-host circuit breaker, and a per-attempt
// timeout. The upstream answers 200 at first, 503 to everything during the
// outage, and 200 again afterwards. Every second the program prints how
// many calls the clients made, how many requests reached the upstream, how
// many calls failed, and the breaker's state changes in that second.
//
// Watch for: the upstream requests dropping to nothing once the breaker
// opens; one probe 5 seconds later, which fails while the upstream is still
// down and opens the breaker again; and the breaker closing at the first
// probe after the upstream recovers. While the breaker is open the clients'
// calls fail at once with breaker.ErrOpen: the breaker's error asks no
// retry, so nobody waits for the next probe or spins against it.
//
// Run it with
//
//	go run ./examples/outage
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	var (
		duration = flag.Duration("duration", 20*time.Second, "how long to run")
		downAt   = flag.Duration("down", 3*time.Second, "when the upstream goes down")
		upAt     = flag.Duration("up", 10*time.Second, "when the upstream comes back")
		workers  = flag.Int("workers", 8, "concurrent clients")
		pause    = flag.Duration("pause", 50*time.Millisecond, "pause between a client's calls")
	)
	flag.Parse()

	var down atomic.Bool
	var upstream atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream.Add(1)
		if down.Load() {
			http.Error(w, "upstream down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	var (
		mu      sync.Mutex
		changes []string // state changes since the last report
		state   = breaker.Closed
	)
	tr, err := resiliencehttp.Standard(nil, standard.WithBreaker(
		breaker.WithOnStateChange(func(host string, from, to breaker.State) {
			mu.Lock()
			changes = append(changes, to.String())
			state = to
			mu.Unlock()
		}),
	))
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: tr}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var calls, failures atomic.Int64
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				calls.Add(1)
				if !call(ctx, client, srv.URL) && ctx.Err() == nil {
					failures.Add(1)
				}
				select {
				case <-ctx.Done():
				case <-time.After(*pause):
				}
			}
		})
	}

	start := time.Now()
	time.AfterFunc(*downAt, func() { down.Store(true) })
	time.AfterFunc(*upAt, func() { down.Store(false) })
	fmt.Printf("upstream down from %v to %v; %d clients\n\n", *downAt, *upAt, *workers)
	fmt.Println("  t  upstream  calls started  upstream requests  failed calls  breaker")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastCalls, lastUpstream, lastFailures int64
	for sec := 1; ctx.Err() == nil; sec++ {
		select {
		case <-ctx.Done():
			continue
		case <-tick.C:
		}
		c, u, f := calls.Load(), upstream.Load(), failures.Load()
		mu.Lock()
		st := state.String()
		if len(changes) > 0 {
			st = strings.Join(changes, " → ")
		}
		changes = changes[:0]
		mu.Unlock()
		health := "up"
		if down.Load() {
			health = "DOWN"
		}
		fmt.Printf("%3ds  %-8s  %13d  %17d  %12d  %s\n", int(time.Since(start).Round(time.Second)/time.Second), health, c-lastCalls, u-lastUpstream, f-lastFailures, st)
		lastCalls, lastUpstream, lastFailures = c, u, f
	}
	wg.Wait()
}

// call makes one GET and reports whether it succeeded.
func call(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
