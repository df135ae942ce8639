package idempotency_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencehttp"
)

// TestNotProcessedReleases checks which statuses are recorded: an answer
// that says the request was not processed (408, 409, 425, 429, any 5xx)
// releases the key, so that a retry runs again; any other answer is
// recorded and replayed.
func TestNotProcessedReleases(t *testing.T) {
	for _, tt := range []struct {
		status   int
		recorded bool
	}{
		{http.StatusOK, true},
		{http.StatusCreated, true},
		{http.StatusBadRequest, true},
		{http.StatusNotFound, true},
		{http.StatusUnprocessableEntity, true},
		{http.StatusRequestTimeout, false},
		{http.StatusConflict, false},
		{http.StatusTooEarly, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			var runs atomic.Int64
			h := idempotency.Middleware(idempotency.NewMemoryStore())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if runs.Add(1) == 1 {
					w.WriteHeader(tt.status)
					return
				}
				io.WriteString(w, "second run")
			}))
			if got := serve(h, "POST", key1, "", "{}"); got.status != tt.status {
				t.Fatalf("first: got %d, want %d", got.status, tt.status)
			}
			got := serve(h, "POST", key1, "", "{}")
			switch {
			case tt.recorded && (got.status != tt.status || got.header.Get("Idempotent-Replayed") != "true" || runs.Load() != 1):
				t.Errorf("retry: got %d %v after %d runs, want the recorded %d replayed", got.status, got.header, runs.Load(), tt.status)
			case !tt.recorded && (got.status != 200 || got.body != "second run" || runs.Load() != 2):
				t.Errorf("retry: got %d %q after %d runs, want a second run", got.status, got.body, runs.Load())
			}
		})
	}
}

// TestInnerRateLimitIsNotRecorded stacks the middlewares in the wrong
// order, idempotency.Middleware(ratelimit.Middleware(h)): a request the
// limiter turns away did not run, and a retry once the quota refilled
// runs instead of getting the stale 429.
func TestInnerRateLimitIsNotRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			io.WriteString(w, "charged")
		})
		lim := ratelimit.NewLocal(ratelimit.Quota{Name: "q", Limit: 1, Window: time.Second})
		perClient := func(*http.Request) string { return "one client" }
		stack := idempotency.Middleware(idempotency.NewMemoryStore())(ratelimit.Middleware(lim, perClient)(h))

		if got := serve(stack, "POST", `"a"`, "", "{}"); got.status != 200 {
			t.Fatalf("first key: got %d, want 200", got.status)
		}
		if got := serve(stack, "POST", `"b"`, "", "{}"); got.status != http.StatusTooManyRequests {
			t.Fatalf("second key, quota spent: got %d, want 429", got.status)
		}
		time.Sleep(time.Second) // the quota refills
		got := serve(stack, "POST", `"b"`, "", "{}")
		if got.status != 200 || got.header.Get("Idempotent-Replayed") != "" || runs.Load() != 2 {
			t.Fatalf("retry of the throttled key: got %d %v after %d runs, want a run of its own", got.status, got.header, runs.Load())
		}
		// Recorded responses never keep a quota's state, which would be
		// stale when replayed.
		time.Sleep(time.Second)
		again := serve(stack, "POST", `"b"`, "", "{}")
		if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("repeat: got %d %v, want a replay", again.status, again.header)
		}
		if v := again.header.Values(ratelimit.StateHeader); len(v) != 0 {
			t.Errorf("replayed %s: %q, want none (recorded quota state is stale)", ratelimit.StateHeader, v)
		}
	})
}

// TestOuterRateLimitFieldsWin stacks the middlewares as the README says,
// ratelimit.Middleware(idempotency.Middleware(h)): a replay carries the
// limiter's decision for this request, not the one recorded with the
// first.
func TestOuterRateLimitFieldsWin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			w.Header().Set("X-Charge", "ch_1")
			io.WriteString(w, "charged")
		})
		lim := ratelimit.NewLocal(ratelimit.Quota{Name: "q", Limit: 3, Window: time.Minute})
		// One quota for every request: its fields carry no partition key.
		stack := ratelimit.Middleware(lim, ratelimit.Global)(idempotency.Middleware(idempotency.NewMemoryStore())(h))

		first := serve(stack, "POST", key1, "", "{}")
		second := serve(stack, "POST", key1, "", "{}")
		if runs.Load() != 1 || second.header.Get("Idempotent-Replayed") != "true" || second.header.Get("X-Charge") != "ch_1" {
			t.Fatalf("repeat: got %d %v after %d runs, want a replay", second.status, second.header, runs.Load())
		}
		want := `"q";r=1;t=40`
		if got := second.header.Values(ratelimit.StateHeader); len(got) != 1 || got[0] != want {
			t.Errorf("replay's %s: got %q (first request's: %q), want the limiter's decision for it, %q",
				ratelimit.StateHeader, got, first.header.Values(ratelimit.StateHeader), want)
		}
	})
}

// handlerTransport serves requests with a handler in the process, so that
// a client and a server share a synctest bubble's clock.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// TestClientIsNotPausedByAReplay composes the library's client with the
// server stacked as the README says: a replay carries the quota the
// limiter has now, so the client's pushback gate does not hold the next
// call to the host for a pause the quota no longer needs.
func TestClientIsNotPausedByAReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		lim := ratelimit.NewLocal(ratelimit.Quota{Name: "q", Limit: 2, Window: 2 * time.Second})
		// One quota for the whole client (no pk): its r=0 holds the host,
		// so a stale one replayed would hold the next call. A quota kept
		// per key carries pk, which holds nothing, stale or not.
		srv := ratelimit.Middleware(lim, ratelimit.Global)(idempotency.Middleware(idempotency.NewMemoryStore())(h))
		tr, err := resiliencehttp.Standard(handlerTransport{srv})
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: tr}
		do := func(method, key string) *http.Response {
			req, _ := http.NewRequest(method, "http://api.example.com/charges", strings.NewReader("{}"))
			if key != "" {
				req.Header.Set("Idempotency-Key", key)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp
		}
		do("POST", `"a"`)
		do("POST", `"b"`)           // the last of the quota: r=0
		time.Sleep(3 * time.Second) // the quota is whole again
		if resp := do("POST", `"b"`); resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("repeat of b: got %v, want a replay", resp.Header)
		}
		start := time.Now()
		do("GET", "")
		if d := time.Since(start); d != 0 {
			t.Errorf("the next call waited %v at the client's gate after a replay, want no wait", d)
		}
	})
}
