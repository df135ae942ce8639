package resiliencehttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/shed"
	"github.com/resilience-go/resilience/standard"
)

// stackServer is a server built from the library's three middlewares
// around a handler that takes 150ms to place an order, whether or not the
// client is still there. It counts the answers it sent by status and the
// orders placed by key.
type stackServer struct {
	*httptest.Server
	mu      sync.Mutex
	placed  map[string]int // runs of the handler, by Idempotency-Key
	answers map[int]int    // answers sent, by status
}

func newStackServer(t *testing.T, stack func(http.Handler) http.Handler) *stackServer {
	t.Helper()
	s := &stackServer{placed: map[string]int{}, answers: map[int]int{}}
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		s.mu.Lock()
		s.placed[r.Header.Get(idempotency.HeaderName)]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created")
	})
	h := stack(orders)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.mu.Lock()
		s.answers[rec.status]++
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// post sends n keyed POSTs for tenant a, from conc goroutines at once, and
// returns the status and stamped key each caller got. With strict, a
// caller told anything but 201 fails the test.
func (s *stackServer) post(t *testing.T, c *http.Client, n, conc int, strict bool) (codes []int, keys []string) {
	t.Helper()
	codes, keys = make([]int, n), make([]string, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/orders", strings.NewReader(fmt.Sprint(i)))
			req.Header.Set("X-Tenant", "a")
			resp, err := c.Do(req)
			if err != nil {
				if strict {
					t.Errorf("order %d: %v", i, err)
				}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[i], keys[i] = resp.StatusCode, resp.Request.Header.Get(idempotency.HeaderName)
			if resp.StatusCode != http.StatusCreated && strict {
				t.Errorf("order %d: %s %s (policy: %v)", i, resp.Status, b, resiliencehttp.PolicyError(resp))
			}
		})
	}
	wg.Wait()
	return codes, keys
}

// check requires every order placed at most once, and once if its caller
// was told 201; an order a caller never heard of is one whose caller got
// an error and no response (so no key back).
func (s *stackServer) check(t *testing.T, codes []int, keys []string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("answers sent, by status: %v; callers told %v", s.answers, codes)
	total := 0
	for i, k := range keys {
		if k == "" {
			continue // reported by post
		}
		n := s.placed[k]
		total += n
		if n > 1 || (codes[i] == http.StatusCreated && n != 1) {
			t.Errorf("order %d (key %s): placed %d times, caller told %d", i, k, n, codes[i])
		}
	}
	unknown := 0 // callers given an error and no response, so no key
	for _, k := range keys {
		if k == "" {
			unknown++
		}
	}
	if n := len(s.placed) - total; n > unknown {
		t.Errorf("%d orders placed under keys no caller got, %d callers got no response", n, unknown)
	}
	clear(s.placed)
	clear(s.answers)
}

// DESIGN rules 11 and 12, the whole server of the README: shed.Middleware
// → ratelimit.Middleware → idempotency.Middleware → handler, against
// Standard with idempotency keys and an attempt timeout (100ms) shorter
// than an order (150ms), with retries and with hedging. The server takes
// one order at a time, sheds the rest (503 + Retry-After), allows 5
// requests a second per tenant (429 + Retry-After, RateLimit with pk) and
// answers a repeat of an order still running 409 + Retry-After. Orders
// sent one after the other: each is placed once and its caller is told
// 201, whatever the server answered on the way (the attempt that timed
// out holds the server's one slot, so a hedge or an early retry is shed
// with a 503 that concerns that call alone, and waits its Retry-After).
// Sent three at a time, more than the server takes, a caller may be told
// 503 when its attempts run out, but no order is placed twice, and each
// caller told 201 has its order placed.
func TestOurClientAgainstOurWholeServer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts []standard.Option
	}{
		{"retry", nil},
		{"hedging", []standard.Option{standard.WithHedging()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			quota := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 5, Window: time.Second})
			tenant := func(r *http.Request) string { return r.Header.Get("X-Tenant") }
			s := newStackServer(t, func(h http.Handler) http.Handler {
				return shed.Middleware(shed.New(shed.Fixed(1), shed.WithQueue(0, 0)))(
					ratelimit.Middleware(quota, tenant)(
						idempotency.Middleware(idempotency.NewMemoryStore())(h)))
			})
			base := newTransport()
			t.Cleanup(base.CloseIdleConnections)
			tr, err := resiliencehttp.Standard(base, append([]standard.Option{
				standard.WithIdempotencyKeys(hostOf(s.Server)),
				standard.WithAttemptTimeout(100 * time.Millisecond),
				standard.WithRetries(5), // slack for a loaded machine, where an attempt may time out before it reaches the server
			}, tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Transport: tr}
			codes, keys := s.post(t, c, 4, 1, true)
			s.check(t, codes, keys)
			codes, keys = s.post(t, c, 6, 3, false)
			s.check(t, codes, keys)
		})
	}
}

// The wrong orders of the same middlewares: idempotency outside the rate
// limit and the load shedder. A request shed or throttled inside the
// idempotency layer did not run: its key is released, not recorded, so
// the client's retry with the same key runs the order once, instead of
// getting a stale 429 or 503 replayed for a day.
func TestOurClientAgainstOurServerWrongOrder(t *testing.T) {
	t.Parallel()
	quota := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 3, Window: time.Second})
	tenant := func(r *http.Request) string { return r.Header.Get("X-Tenant") }
	s := newStackServer(t, func(h http.Handler) http.Handler {
		return idempotency.Middleware(idempotency.NewMemoryStore())(
			ratelimit.Middleware(quota, tenant)(
				shed.Middleware(shed.New(shed.Fixed(1), shed.WithQueue(0, 0)))(h)))
	})
	base := newTransport()
	t.Cleanup(base.CloseIdleConnections)
	tr, err := resiliencehttp.Standard(base, standard.WithIdempotencyKeys(hostOf(s.Server)))
	if err != nil {
		t.Fatal(err)
	}
	codes, keys := s.post(t, &http.Client{Transport: tr}, 6, 3, true)
	s.mu.Lock()
	if s.answers[http.StatusTooManyRequests]+s.answers[http.StatusServiceUnavailable] == 0 {
		t.Errorf("answers %v: the server turned nothing away, the test tests nothing", s.answers)
	}
	s.mu.Unlock()
	s.check(t, codes, keys)
}
