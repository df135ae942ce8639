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
	t.Helper()
	s := &orderServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
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
