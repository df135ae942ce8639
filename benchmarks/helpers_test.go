package benchmarks

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// server is a loopback server that counts what it sees: requests, their
// arrival times and new TCP connections.
type server struct {
	*httptest.Server
	newConns atomic.Int64
	arrivals
}

// arrivals records when requests or calls reached a server.
type arrivals struct {
	mu    sync.Mutex // guards times
	times []time.Time
}

// arrive records an arrival and returns its 1-based number.
func (a *arrivals) arrive() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, time.Now())
	return len(a.times)
}

// count returns how many arrivals there were.
func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times)
}

// gaps returns the time between consecutive arrivals.
func (a *arrivals) gaps() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gs []time.Duration
	for i := 1; i < len(a.times); i++ {
		gs = append(gs, a.times[i].Sub(a.times[i-1]).Round(time.Millisecond))
	}
	return gs
}

// newServer starts a server whose handler gets the 1-based number of each
// request. It is closed when the test ends.
func newServer(t *testing.T, h func(n int, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.arrive()
		h(n, w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.newConns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// requests returns how many requests the server has seen.
func (s *server) requests() int { return s.count() }

// A contender is one library, configured for a scenario, that the scenario
// sends its calls through.
type contender struct {
	name string
	ours bool
	// client returns the HTTP client to use; base is a fresh transport
	// owned by the scenario.
	client func(t *testing.T, base *http.Transport) *http.Client
}

// Short waits, used where the scenario counts requests or connections and
// the length of the waits does not change what is counted; they keep the
// suite fast. Failsafe-go's retry policy waits nothing by default, so it
// needs no such change.
const (
	fastInitial = time.Millisecond
	fastMax     = 10 * time.Millisecond
)

func bare() contender {
	return contender{name: "net/http (no retry)", client: func(_ *testing.T, base *http.Transport) *http.Client {
		return &http.Client{Transport: base}
	}}
}

// oursStandard is resiliencehttp.Standard with its defaults and the extra
// options given.
func oursStandard(name string, opts ...standard.Option) contender {
	return contender{name: name, ours: true, client: func(t *testing.T, base *http.Transport) *http.Client {
		rt, err := resiliencehttp.Standard(base, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: rt}
	}}
}

func oursStandardFast() contender {
	return oursStandard("resilience Standard (waits 1-10ms)",
		standard.WithRetry(retry.WithBackoff(fastInitial, fastMax)))
}

func failsafeRetry() contender {
	return contender{name: "failsafe-go retry (defaults)", client: func(_ *testing.T, base *http.Transport) *http.Client {
		return &http.Client{Transport: failsafehttp.NewRoundTripper(base, failsafehttp.NewRetryPolicyBuilder().Build())}
	}}
}

func failsafeRetryBreaker() contender {
	return contender{name: "failsafe-go retry + breaker (defaults)", client: func(_ *testing.T, base *http.Transport) *http.Client {
		return &http.Client{Transport: failsafehttp.NewRoundTripper(base,
			failsafehttp.NewRetryPolicyBuilder().Build(),
			circuitbreaker.NewWithDefaults[*http.Response]())}
	}}
}

// retryable is go-retryablehttp's client through its standard adapter, with
// its defaults except the logger (off) and, when fast, its waits.
func retryable(fast bool) contender {
	name := "go-retryablehttp (defaults)"
	if fast {
		name = "go-retryablehttp (waits 1-10ms)"
	}
	return contender{name: name, client: func(_ *testing.T, base *http.Transport) *http.Client {
		c := newRetryableClient(base)
		if fast {
			c.RetryWaitMin, c.RetryWaitMax = fastInitial, fastMax
		}
		return c.StandardClient()
	}}
}

// run calls f for each contender in its own subtest, with a fresh base
// transport and a context that ends with the subtest. Ending the context
// is what frees connections whose response bodies a library left open, so
// that no goroutine outlives the test; idle connections are closed too.
func run(t *testing.T, parallel bool, cs []contender, f func(t *testing.T, ctx context.Context, c contender, client *http.Client)) {
	t.Helper()
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			base := newBaseTransport()
			t.Cleanup(base.CloseIdleConnections)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			f(t, ctx, c, c.client(t, base))
		})
	}
}
