package resiliencehttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

func ExampleNewTransport() {
	var calls atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready")
	}))
	defer upstream.Close()

	client := &http.Client{Transport: resiliencehttp.NewTransport(nil,
		timeout.New(10*time.Second), // the whole call
		retry.New(retry.WithBackoff(time.Millisecond, 10*time.Millisecond)),
		timeout.New(time.Second), // each attempt
	)}
	resp, err := client.Get(upstream.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body), "after", calls.Load(), "requests")
	// Output: 200 OK ready after 3 requests
}

func ExampleNewTransport_post() {
	var calls atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "try again", http.StatusServiceUnavailable)
	}))
	defer upstream.Close()
	client := &http.Client{Transport: resiliencehttp.NewTransport(nil,
		retry.New(retry.WithBackoff(time.Millisecond, time.Millisecond)))}

	// Without an Idempotency-Key a POST is sent once: the server may have
	// acted on it.
	resp, _ := client.Post(upstream.URL, "application/json", strings.NewReader(`{"amount":100}`))
	resp.Body.Close()
	fmt.Println(resp.StatusCode, calls.Load())

	// With one, the server can deduplicate, so it is retried; when the
	// retries run out the caller gets the last response.
	calls.Store(0)
	req, _ := http.NewRequest(http.MethodPost, upstream.URL, strings.NewReader(`{"amount":100}`))
	req.Header.Set("Idempotency-Key", `"order-42"`)
	resp, _ = client.Do(req)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, calls.Load())
	// Output:
	// 503 1
	// 503 4
}

func ExampleStandard() {
	transport, err := resiliencehttp.Standard(nil,
		standard.WithAttemptTimeout(2*time.Second),
		standard.WithBulkhead(64), // at most 64 calls in flight per host
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	client := &http.Client{Transport: transport}
	_ = client

	// Invalid combinations are errors when building, never at call time.
	_, err = resiliencehttp.Standard(nil, standard.WithAttemptTimeout(time.Minute))
	fmt.Println(err)
	// Output: standard: WithAttemptTimeout(1m0s) is above WithTotalTimeout(30s): lower the one or raise the other
}

func ExamplePolicyError() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "try again", http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	transport, err := resiliencehttp.Standard(nil, standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Millisecond)))
	if err != nil {
		fmt.Println(err)
		return
	}
	transport.MaxBodyBuffer = 1 << 10
	client := &http.Client{Transport: transport}

	// A POST with an idempotency key may be retried, but not this one: its
	// body, with no GetBody, is larger than MaxBodyBuffer.
	req, _ := http.NewRequest(http.MethodPost, upstream.URL, io.MultiReader(strings.NewReader(strings.Repeat("x", 4<<10))))
	req.Header.Set("Idempotency-Key", `"order-42"`)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	fmt.Println(errors.Is(resiliencehttp.PolicyError(resp), resiliencehttp.ErrBodyNotReplayable))
	// Output:
	// 503 Service Unavailable
	// true
}

// The standard pipeline's pushback gate: once a host answered 429 with
// Retry-After, a call whose deadline ends before the pause does is turned
// away at once, without a request; a call with time to spare would wait.
// (Retries are off here so that the first call returns the 429 at once.)
func ExampleStandard_pushbackGate() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	tr, err := resiliencehttp.Standard(nil, standard.WithRetries(0))
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}

	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err = client.Do(req)
	var closed *pushback.ClosedError
	if errors.As(err, &closed) {
		// Retry-After: 30 is capped at the retry's maximum delay, 10s.
		fmt.Println(errors.Is(err, pushback.ErrClosed), "reopens in", time.Until(closed.Until).Round(time.Second))
	}
	fmt.Println("requests sent:", hits.Load())
	// Output:
	// 429 Too Many Requests
	// true reopens in 10s
	// requests sent: 1
}
