// Command quickstart calls a flaky in-process HTTP server through the
// standard pipeline (resiliencehttp.Standard) and prints, for each call, how
// many attempts it took, how long the transport waited between them, and
// the final status.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	upstream := httptest.NewServer(newFlakyHandler())
	defer upstream.Close()

	// Build the transport once and share it: its breakers and limits are
	// per host, across every call made through it.
	transport, err := resiliencehttp.Standard(countAttempts{http.DefaultTransport},
		standard.WithTotalTimeout(10*time.Second),         // the whole call, retries included
		standard.WithAttemptTimeout(300*time.Millisecond), // each attempt
		standard.WithRetry(
			retry.WithBackoff(100*time.Millisecond, 2*time.Second),
			retry.WithOnRetry(func(ctx context.Context, e retry.Event) { logFrom(ctx).waits = append(logFrom(ctx).waits, e.Wait) }),
		),
	)
	if err != nil {
		log.Fatal(err) // an invalid configuration is reported here, never at call time
	}
	client := &http.Client{Transport: transport}

	calls := []struct{ method, path, key string }{
		{"GET", "/stable", ""},
		{"GET", "/flaky", ""},     // 503, 503, then 200
		{"GET", "/throttled", ""}, // 429 with Retry-After: 1, then 200
		{"GET", "/slow", ""},      // the first attempt hangs past the attempt timeout
		{"POST", "/charge", ""},   // 503: a POST without an Idempotency-Key is never retried
		{"POST", "/charge", "order-42"},
		{"GET", "/down", ""}, // always 503: retries run out, the last response is returned
	}
	for _, c := range calls {
		l := &callLog{}
		ctx := context.WithValue(context.Background(), logKey{}, l)
		var body io.Reader
		if c.method == http.MethodPost {
			body = strings.NewReader(`{"amount": 100}`)
		}
		req, err := http.NewRequestWithContext(ctx, c.method, upstream.URL+c.path, body)
		if err != nil {
			log.Fatal(err)
		}
		if c.key != "" {
			req.Header.Set("Idempotency-Key", c.key)
		}
		start := time.Now()
		resp, err := client.Do(req)
		took := time.Since(start).Round(time.Millisecond)
		name := c.method + " " + c.path
		if c.key != "" {
			name += " (Idempotency-Key)"
		}
		if err != nil {
			fmt.Printf("%-34s error %v after %d attempt(s), waits %v, %v\n", name, err, l.attempts, l.roundedWaits(), took)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("%-34s %-24s after %d attempt(s), waits %v, %v\n", name, resp.Status, l.attempts, l.roundedWaits(), took)
	}
}

// callLog collects what happened during one call.
type callLog struct {
	attempts int
	waits    []time.Duration
}

func (l *callLog) roundedWaits() []time.Duration {
	out := make([]time.Duration, len(l.waits))
	for i, w := range l.waits {
		out[i] = w.Round(time.Millisecond)
	}
	return out
}

type logKey struct{}

func logFrom(ctx context.Context) *callLog {
	if l, ok := ctx.Value(logKey{}).(*callLog); ok {
		return l
	}
	return &callLog{}
}

// countAttempts is the base transport: it sends each attempt and counts it.
type countAttempts struct{ base http.RoundTripper }

func (c countAttempts) RoundTrip(r *http.Request) (*http.Response, error) {
	logFrom(r.Context()).attempts++
	return c.base.RoundTrip(r)
}

// newFlakyHandler misbehaves in a different way on each path.
func newFlakyHandler() http.Handler {
	var (
		mu   sync.Mutex
		hits = map[string]int{}
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // lets the server notice a client that went away
		mu.Lock()
		hits[r.URL.Path]++
		n := hits[r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == "/flaky" && n <= 2,
			r.URL.Path == "/charge" && r.Header.Get("Idempotency-Key") == "",
			r.URL.Path == "/charge" && n == 2,
			r.URL.Path == "/down":
			http.Error(w, "try again", http.StatusServiceUnavailable)
		case r.URL.Path == "/throttled" && n == 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case r.URL.Path == "/slow" && n == 1:
			select { // hang until the attempt timeout gives up
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			fmt.Fprintln(w, "ok")
		}
	})
}
