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
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

// orderServer is idempotency.Middleware in front of a handler that takes
// 300ms to place an order, whether or not the client is still there, and
// answers 201 with the order's number. It records the key of every order
// placed.
type orderServer struct {
	*httptest.Server
	mu     sync.Mutex
	placed []string // the Idempotency-Key of each order placed
}

func newOrderServer(t *testing.T, opts ...idempotency.Option) *orderServer {
	return newSlowOrderServer(t, 300*time.Millisecond, opts...)
}

// newSlowOrderServer is newOrderServer with orders that take d to place.
func newSlowOrderServer(t *testing.T, d time.Duration, opts ...idempotency.Option) *orderServer {
	t.Helper()
	s := &orderServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		s.mu.Lock()
		s.placed = append(s.placed, r.Header.Get("Idempotency-Key"))
		n := len(s.placed)
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "order %d", n)
	})
	s.Server = httptest.NewServer(idempotency.Middleware(idempotency.NewMemoryStore(), opts...)(h))
	t.Cleanup(s.Close)
	return s
}

func (s *orderServer) orders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.placed...)
}

// placeOrders sends n keyed POSTs, one after the other, each with an
// attempt timeout (100ms) shorter than the time the server takes to place
// the order (300ms), and returns what each caller was told.
func placeOrders(t *testing.T, s *orderServer, n int, opts ...standard.Option) (statuses []int, keys []string, errs []error) {
	t.Helper()
	base := newTransport()
	t.Cleanup(base.CloseIdleConnections)
	opts = append([]standard.Option{
		standard.WithIdempotencyKeys(hostOf(s.Server)),
		standard.WithAttemptTimeout(100 * time.Millisecond),
	}, opts...)
	tr, err := resiliencehttp.Standard(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/orders", strings.NewReader(fmt.Sprintf(`{"item":%d}`, i)))
		resp, err := c.Do(req)
		if err != nil {
			cancel()
			statuses, keys, errs = append(statuses, 0), append(keys, ""), append(errs, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusCreated {
			err = fmt.Errorf("%s: %s (policy: %v)", resp.Status, b, resiliencehttp.PolicyError(resp))
		}
		statuses, errs = append(statuses, resp.StatusCode), append(errs, err)
		keys = append(keys, resp.Request.Header.Get(idempotency.HeaderName))
	}
	return statuses, keys, errs
}

// A keyed POST whose attempt times out while the server still places the
// order: the next attempt, with the same key, is answered 409 with
// Retry-After while the first runs. The client waits and asks again with
// the key, and the caller gets the order's real outcome, 201, never a 409
// for an order that was placed. The key the transport stamped is on
// resp.Request.Header, as documented.
func TestKeyedRetryWaitsForTheOrderInFlight(t *testing.T) {
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
			s := newOrderServer(t)
			statuses, keys, errs := placeOrders(t, s, 5, tt.opts...)
			orders := s.orders()
			created := 0
			for i, code := range statuses {
				if code == http.StatusCreated {
					created++
				} else {
					t.Errorf("order %d: %v", i, errs[i])
				}
			}
			if len(orders) != 5 || created != 5 {
				t.Fatalf("%d orders placed, %d reported created; want 5 and 5", len(orders), created)
			}
			for i, k := range keys {
				if k == "" || k != orders[i] {
					t.Fatalf("call %d: resp.Request carries key %q, the order was placed with %q", i, k, orders[i])
				}
			}
		})
	}
}

// An order that takes 4s to place, under a 100ms attempt timeout and a
// 10s deadline: the server answers each ask "in flight" (409, with a
// Retry-After that grows as long as the key is held) until the order is
// placed. Those answers spend none of the call's attempts, so it asks
// until the recorded 201 comes, within its deadline; before, its fourth
// attempt ended the call with the 409 after about 3s.
func TestKeyedRetryOutlastsALongOrder(t *testing.T) {
	t.Parallel()
	s := newSlowOrderServer(t, 4*time.Second)
	statuses, _, errs := placeOrders(t, s, 1)
	if statuses[0] != http.StatusCreated || len(s.orders()) != 1 {
		t.Fatalf("got %d (%v) with %d orders placed, want 201 for the one order", statuses[0], errs[0], len(s.orders()))
	}
}

// downStore is an idempotency store that cannot be reached.
type downStore struct{}

var errDown = errors.New("store: connection refused")

func (downStore) Reserve(context.Context, string, string, time.Duration) (idempotency.Entry, bool, error) {
	return idempotency.Entry{}, false, errDown
}
func (downStore) Complete(context.Context, string, uint64, []byte, time.Duration) error {
	return errDown
}
func (downStore) Release(context.Context, string, uint64) error { return errDown }
func (downStore) Get(context.Context, string) (idempotency.Entry, bool, error) {
	return idempotency.Entry{}, false, errDown
}

// The idempotency middleware's store is down: it answers a keyed POST 503
// with Retry-After and a problem detail, and serves a GET, which carries
// no key, as usual. The POST's 503 does not hold the host's GETs at the
// pushback gate (before, a GET with less than a second left was turned
// away with pushback.ErrClosed), and the POST's caller is told the
// server's reason, in the error the policy gave up with.
func TestKeyedStoreDownDoesNotHoldTheHost(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(idempotency.Middleware(downStore{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	base := newTransport()
	t.Cleanup(base.CloseIdleConnections)
	tr, err := resiliencehttp.Standard(base, standard.WithIdempotencyKeys(hostOf(srv)))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}

	type result struct {
		code    int
		policy  error
		err     error
		problem string
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/orders", strings.NewReader(`{}`))
		resp, err := c.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode, policy: resiliencehttp.PolicyError(resp), problem: string(b)}
	}()
	time.Sleep(200 * time.Millisecond) // the POST's first 503 has come
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/status", nil)
	resp, getErr := c.Do(req)
	if getErr == nil {
		resp.Body.Close()
	}
	r := <-done
	if getErr != nil || resp.StatusCode != 200 {
		t.Fatalf("GET while the keyed POST waits: %v, want a 200 at once", getErr)
	}
	const reason = "could not be checked, because the idempotency store is unavailable"
	var msg string
	switch {
	case r.err != nil:
		msg = r.err.Error()
	case r.code != http.StatusServiceUnavailable || r.policy == nil:
		t.Fatalf("POST: %d (policy error %v), want the 503 and why the policy gave up", r.code, r.policy)
	default:
		msg = r.policy.Error()
		if !strings.Contains(r.problem, reason) {
			t.Fatalf("POST: the caller read %q, want the whole problem body", r.problem)
		}
	}
	if !strings.Contains(msg, reason) {
		t.Fatalf("POST: the caller's error is %q, want the server's reason %q in it", msg, reason)
	}
}

// DESIGN rule 11: our client and our server speak one protocol. The
// server stacks its middleware as the README does (rate limit, then
// idempotency, then the handler), with a quota of 2 orders a second; the
// client is Standard with idempotency keys and an attempt timeout shorter
// than the time an order takes. Four orders in a row: every one is placed
// once and reported created, whatever the server answered on the way (a
// RateLimit field with no quota left, a 429 with Retry-After, a 409 for a
// key in flight).
func TestOurClientAgainstOurServer(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		placed = map[string]int{}
	)
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		mu.Lock()
		placed[r.Header.Get(idempotency.HeaderName)]++
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created")
	})
	quota := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 2, Window: time.Second})
	h := ratelimit.Middleware(quota, func(r *http.Request) string { return r.Header.Get("X-Tenant") })(
		idempotency.Middleware(idempotency.NewMemoryStore())(orders))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	base := newTransport()
	t.Cleanup(base.CloseIdleConnections)
	tr, err := resiliencehttp.Standard(base,
		standard.WithIdempotencyKeys(hostOf(srv)),
		standard.WithAttemptTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	for i := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/orders", strings.NewReader(fmt.Sprint(i)))
		req.Header.Set("X-Tenant", "a")
		resp, err := c.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("order %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("order %d: %s %s (policy: %v)", i, resp.Status, b, resiliencehttp.PolicyError(resp))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(placed) != 4 {
		t.Fatalf("%d orders placed, want 4", len(placed))
	}
	for k, n := range placed {
		if n != 1 {
			t.Fatalf("order with key %q placed %d times", k, n)
		}
	}
}

// A 409 for a key in flight concerns that call alone: while the keyed
// call waits out its Retry-After, the host's other calls go at once, and
// the keyed call asks again with the same key when the delay ends.
func TestInFlightAnswerDoesNotHoldTheHost(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			io.WriteString(w, "ok")
			return
		}
		mu.Lock()
		keys = append(keys, r.Header.Get(idempotency.HeaderName))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(s.Close)
	synctest.Test(t, func(t *testing.T) {
		log := newSendLog()
		tr, err := resiliencehttp.Standard(log, standard.WithIdempotencyKeys(hostOf(s)))
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: tr}
		var code int
		var wg sync.WaitGroup
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/orders", strings.NewReader("{}"))
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("keyed POST: %v", err)
				return
			}
			resp.Body.Close()
			code = resp.StatusCode
		})
		time.Sleep(100 * time.Millisecond)
		getCode, getErr := get(t, c, s.URL+"/status", 500*time.Millisecond)
		wg.Wait()
		if getErr != nil || getCode != 200 {
			t.Fatalf("GET while the keyed POST waits: %d, %v; want a 200 at once", getCode, getErr)
		}
		if code != http.StatusCreated {
			t.Fatalf("keyed POST: %d, want the 201 of its second attempt", code)
		}
		if sent := log.times(hostOf(s)); len(sent) != 3 || sent[2] != 2*time.Second {
			t.Fatalf("requests at %v; want the POST at 0, the GET at 100ms, the POST again at 2s", sent)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
			t.Fatalf("the POST's attempts carried keys %q, want the same key twice", keys)
		}
	})
}
