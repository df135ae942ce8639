package resiliencehttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

// replicas are two real servers behind one host name: a client-side
// balancer sends odd requests to the slow one and even requests to the
// fast one.
type replicas struct {
	fast, slow         *httptest.Server
	n                  atomic.Int32
	fastHits, slowHits atomic.Int32
	slowCancelled      atomic.Int32
	slowStarted        atomic.Int32 // handlers that began waiting
	tracker            *closeTracker
	slowDelay          time.Duration
}

func newReplicas(t *testing.T, slowDelay time.Duration) *replicas {
	t.Helper()
	r := &replicas{slowDelay: slowDelay}
	r.fast = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.fastHits.Add(1)
		b, _ := io.ReadAll(req.Body)
		fmt.Fprintf(w, "fast:%s", b)
	}))
	r.slow = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Read the body first: the server notices a client going away
		// only once it has.
		b, _ := io.ReadAll(req.Body)
		r.slowStarted.Add(1)
		select {
		case <-time.After(r.slowDelay):
			r.slowHits.Add(1)
			fmt.Fprintf(w, "slow:%s", b)
		case <-req.Context().Done():
			r.slowCancelled.Add(1)
		}
	}))
	t.Cleanup(r.fast.Close)
	t.Cleanup(r.slow.Close)
	base := newTransport()
	t.Cleanup(base.CloseIdleConnections)
	r.tracker = &closeTracker{base: base}
	return r
}

// RoundTrip balances requests over the replicas.
func (r *replicas) RoundTrip(req *http.Request) (*http.Response, error) {
	to := r.fast
	if r.n.Add(1)%2 == 1 {
		to = r.slow
	}
	out := req.Clone(req.Context())
	out.URL.Host = strings.TrimPrefix(to.URL, "http://")
	out.Host = ""
	return r.tracker.RoundTrip(out)
}

// Every call's first attempt goes to the slow replica: the hedge, sent to
// the fast one after the delay, wins, and the slow attempt is cancelled.
func TestHedgingOnRealReplicas(t *testing.T) {
	r := newReplicas(t, 10*time.Second)
	b := budget.New()
	p := resilience.Chain(
		hedge.New(hedge.WithDelay(20*time.Millisecond), hedge.WithBudget(b)),
		bulkhead.New(2), // each call's two attempts fill it: a slot kept by a loser would turn the next call away
	)
	client := &http.Client{Transport: resiliencehttp.NewTransport(r, p)}
	const calls = 20
	var slowest time.Duration
	for i := range calls {
		req, _ := http.NewRequest(http.MethodPost, "http://api.test/items", strings.NewReader(fmt.Sprintf("item %d", i)))
		req.Header.Set("Idempotency-Key", fmt.Sprint(i))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got, want := readAll(t, resp), fmt.Sprintf("fast:item %d", i); got != want {
			t.Fatalf("call %d: body %q, want %q (the hedge's, with the request body replayed)", i, got, want)
		}
		slowest = max(slowest, time.Since(start))
	}
	// Structural: no call waited for the slow replica (10s).
	if slowest >= 5*time.Second {
		t.Fatalf("slowest call took %v: the slow replica's latency, not the hedge's", slowest)
	}
	if r.fastHits.Load() != calls || r.slowHits.Load() != 0 {
		t.Fatalf("fast replica answered %d, slow %d; want %d and 0", r.fastHits.Load(), r.slowHits.Load(), calls)
	}
	// Every slow attempt that reached its server (all of them, unless the
	// machine is so slow that the hedge won first) was cancelled; the
	// server notices asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for r.slowCancelled.Load() != r.slowStarted.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c, s := r.slowCancelled.Load(), r.slowStarted.Load(); c != s || s == 0 {
		t.Fatalf("%d slow attempts cancelled of %d that reached the server", c, s)
	}
	if o, c := r.tracker.opened.Load(), r.tracker.closed.Load(); o != c {
		t.Fatalf("%d response bodies opened, %d closed", o, c)
	}
	if b.Tokens() != budget.DefaultCapacity {
		t.Fatalf("budget at %d tokens: winning hedges must be refunded", b.Tokens())
	}
}

// Many concurrent hedged calls through one transport, under -race: each
// caller gets a response to its own request, and every body is closed.
func TestHedgingConcurrentCalls(t *testing.T) {
	r := newReplicas(t, 200*time.Millisecond)
	p := hedge.New(hedge.WithDelay(5*time.Millisecond), hedge.WithMaxHedges(2))
	client := &http.Client{Transport: resiliencehttp.NewTransport(r, p)}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPut, "http://api.test/items", strings.NewReader(fmt.Sprint(i)))
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || !strings.HasSuffix(string(b), ":"+fmt.Sprint(i)) {
				errs <- fmt.Errorf("call %d: body %q, %v", i, b, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if o, c := r.tracker.opened.Load(), r.tracker.closed.Load(); o != c {
		t.Fatalf("%d response bodies opened, %d closed", o, c)
	}
}

func TestHedgingCallerCancellation(t *testing.T) {
	r := newReplicas(t, time.Hour)
	r.fast.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.slowStarted.Add(1)
		<-req.Context().Done() // both replicas hang
		r.slowCancelled.Add(1)
	})
	p := hedge.New(hedge.WithDelay(10 * time.Millisecond))
	client := &http.Client{Transport: resiliencehttp.NewTransport(r, p)}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.test/", nil)
	go func() {
		// Cancel once both attempts reached the servers.
		for r.slowStarted.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := client.Do(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the caller's context.Canceled", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.slowCancelled.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r.slowCancelled.Load() != 2 {
		t.Fatalf("%d of the 2 attempts saw the cancellation", r.slowCancelled.Load())
	}
}

func TestStandardWithHedging(t *testing.T) {
	r := newReplicas(t, 10*time.Second)
	tr, err := resiliencehttp.Standard(r, standard.WithHedging(hedge.WithDelay(20*time.Millisecond)), standard.WithBulkhead(2))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	for i := range 5 {
		resp, err := client.Get("http://api.test/")
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "fast:" {
			t.Fatalf("call %d: %q, want the fast replica's answer", i, got)
		}
	}
}
