package resiliencehttp_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// stateLog records a breaker's state changes.
type stateLog struct {
	mu      sync.Mutex
	changes []string
	onOpen  func()
}

func (l *stateLog) record(name string, from, to breaker.State) {
	l.mu.Lock()
	l.changes = append(l.changes, from.String()+"->"+to.String())
	l.mu.Unlock()
	if to == breaker.Open && l.onOpen != nil {
		l.onOpen()
	}
}

func (l *stateLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.changes)
}

// standardClient is resiliencehttp.Standard with the preset's defaults
// except a short backoff, so that the test does not wait whole seconds;
// the breaker keeps every default.
func standardClient(t testing.TB, log *stateLog, opts ...standard.Option) *http.Client {
	t.Helper()
	opts = append([]standard.Option{
		standard.WithRetry(retry.WithBackoff(time.Millisecond, 5*time.Millisecond)),
		standard.WithBreaker(breaker.WithOnStateChange(log.record)),
	}, opts...)
	tr, err := resiliencehttp.Standard(http.DefaultTransport.(*http.Transport).Clone(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Base.(*http.Transport).CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// brownoutServer fails a random 30% of the requests it sees with a 503:
// three in each run of ten, at random places within the run.
func brownoutServer(t *testing.T, seed uint64) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var (
		mu       sync.Mutex
		rng      = rand.New(rand.NewPCG(seed, seed))
		pattern  []bool
		requests atomic.Int64
		failures atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mu.Lock()
		if len(pattern) == 0 {
			pattern = []bool{true, true, true, false, false, false, false, false, false, false}
			rng.Shuffle(len(pattern), func(i, j int) { pattern[i], pattern[j] = pattern[j], pattern[i] })
		}
		fail := pattern[0]
		pattern = pattern[1:]
		mu.Unlock()
		if fail {
			failures.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, "answer")
	}))
	t.Cleanup(srv.Close)
	return srv, &requests, &failures
}

func TestStandardBreakerRidesThroughBrownout(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		srv, requests, failures := brownoutServer(t, seed)
		log := &stateLog{}
		c := standardClient(t, log)
		failedCalls := 0
		for i := range 200 {
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatalf("seed %d, call %d: %v", seed, i+1, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failedCalls++
			}
		}
		if log.String() != "[]" {
			t.Errorf("seed %d: breaker changed state %v, want it closed throughout", seed, log)
		}
		t.Logf("seed %d: 200 calls, %d upstream requests, %d failed (%.0f%%), %d calls failed after retries",
			seed, requests.Load(), failures.Load(), 100*float64(failures.Load())/float64(requests.Load()), failedCalls)
	}
}

func TestStandardBreakerOpensOnOutage(t *testing.T) {
	var (
		seen atomic.Int64
		down atomic.Bool
	)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer flaky.Close()
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close() // connections are now refused

	for _, tt := range []struct {
		name   string
		url    string
		warmUp int // healthy calls before the outage
	}{
		{"503", flaky.URL, 0},
		{"503 after 200 healthy calls", flaky.URL, 200},
		{"connection refused", refusedURL, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls, openedAt atomic.Int64
			log := &stateLog{onOpen: func() { openedAt.CompareAndSwap(0, calls.Load()) }}
			c := standardClient(t, log)
			get := func() error {
				resp, err := c.Get(tt.url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				return err
			}
			down.Store(false)
			for range tt.warmUp {
				if err := get(); err != nil {
					t.Fatal(err)
				}
			}
			down.Store(true)
			for range 25 {
				calls.Add(1)
				get()
			}
			if n := openedAt.Load(); n == 0 {
				t.Fatalf("breaker not open after 25 calls of an outage (changes %v)", log)
			} else {
				t.Logf("opened during call %d of the outage", n)
			}
			// Open: calls fail fast with ErrOpen, without reaching the
			// server.
			before := seen.Load()
			if err := get(); !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("after the breaker opened: got %v, want ErrOpen", err)
			}
			if n := seen.Load() - before; n != 0 {
				t.Fatalf("server saw %d requests while the breaker was open, want 0", n)
			}
		})
	}
}

func TestStandardRejectsInvalidConfiguration(t *testing.T) {
	_, err := resiliencehttp.Standard(nil, standard.WithAttemptTimeout(time.Minute))
	if err == nil {
		t.Fatal("attempt timeout above the total: no error")
	}
}

func BenchmarkStandard(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := standardClient(b, &stateLog{})
	plain := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer plain.CloseIdleConnections()
	get := func(b *testing.B, c *http.Client) {
		resp, err := c.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b, plain)
		}
	})
	b.Run("standard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b, c)
		}
	})
}

// The standard pipeline adds at most 20 allocations to a successful GET on
// loopback over the bare transport (issue 14's budget; the server's
// allocations, in this process, count on both sides).
func TestStandardAllocationBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not the program's under the race detector")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	bare := http.DefaultTransport.(*http.Transport).Clone()
	defer bare.CloseIdleConnections()
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	std, err := resiliencehttp.Standard(base)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(rt http.RoundTripper) float64 {
		c := &http.Client{Transport: rt}
		return testing.AllocsPerRun(200, func() {
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	b, s := allocs(bare), allocs(std)
	if s > b+20 {
		t.Fatalf("Standard: %v allocations per GET, bare %v: %v more, want at most 20", s, b, s-b)
	}
	t.Logf("Standard: %v allocations per GET, bare %v", s, b)
}
