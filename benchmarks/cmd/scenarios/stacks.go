package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

// A stack is one client configuration the load goes through. build wraps
// base, a fresh transport that counts every attempt sent, and may report
// its breaker's state changes to obs. Every stack makes at most 4 attempts
// per call (failsafe-adaptive one).
type stack struct {
	name    string // for -stacks and file names
	title   string // for tables and legends
	breaker bool   // whether obs sees breaker state changes
	extra   bool   // run only when named in -stacks, not by default
	build   func(base http.RoundTripper, obs *observer) (http.RoundTripper, error)
}

// observer collects what a stack reports about itself during a run.
type observer struct {
	breakerChanges atomic.Int64
}

func (o *observer) breakerChanged() { o.breakerChanges.Add(1) }

// stacks is the registry, in the order stacks run and appear in tables.
// To add a variant of ours, add a line such as
//
//	ours("standard-nobreaker", "resilience Standard, WithoutBreaker", standard.WithoutBreaker()),
//
// and select it with -stacks.
var stacks = []stack{
	{name: "none", title: "no protection (net/http)", build: noProtection},
	{name: "naive", title: "naive retry loop (4 attempts, 50ms)", build: naiveLoop},
	{name: "retryablehttp", title: "go-retryablehttp (RetryMax 3)", build: retryableHTTP},
	{name: "failsafe", title: "failsafe-go (retry 4 attempts, breaker defaults, 1s timeout)", breaker: true, build: failsafeGo},
	ours("standard", "resilience Standard (defaults)"),
	extra(ours("standard-hedging", "resilience Standard, WithHedging (30ms)", standard.WithHedging())),
	extra(ours("standard-nobreaker", "resilience Standard, WithoutBreaker (the retry budget alone)", standard.WithoutBreaker())),
	extra(ours("standard-adaptive", "resilience Standard, WithAdaptiveConcurrency (defaults)", standard.WithAdaptiveConcurrency())),
	extra(ours("standard-hedging-adaptive", "resilience Standard, WithHedging (30ms), WithAdaptiveConcurrency (defaults)", standard.WithHedging(), standard.WithAdaptiveConcurrency())),
	extra(stack{name: "failsafe-adaptive", title: "failsafe-go adaptivelimiter (defaults, one attempt), through failsafehttp", build: failsafeAdaptive}),
}

// extra marks a stack to run only when -stacks names it.
func extra(s stack) stack {
	s.extra = true
	return s
}

// defaultStacks are the stacks run when -stacks is not given: all of them.
func defaultStacks() string {
	var ns []string
	for _, s := range stacks {
		if !s.extra {
			ns = append(ns, s.name)
		}
	}
	return strings.Join(ns, ",")
}

// ours is resiliencehttp.Standard with opts, its breaker observed.
func ours(name, title string, opts ...standard.Option) stack {
	return stack{name: name, title: title, breaker: true,
		build: func(base http.RoundTripper, obs *observer) (http.RoundTripper, error) {
			opts := append([]standard.Option{standard.WithBreaker(breaker.WithOnStateChange(
				func(string, breaker.State, breaker.State) { obs.breakerChanged() }))}, opts...)
			return resiliencehttp.Standard(base, opts...)
		}}
}

func noProtection(base http.RoundTripper, _ *observer) (http.RoundTripper, error) { return base, nil }

// naiveLoop is what a caller writes without a library: up to 4 attempts,
// 50ms apart, on a transport error, a 5xx or a 429.
func naiveLoop(base http.RoundTripper, _ *observer) (http.RoundTripper, error) {
	return &naiveRetry{next: base, attempts: 4, wait: 50 * time.Millisecond}, nil
}

type naiveRetry struct {
	next     http.RoundTripper
	attempts int
	wait     time.Duration
}

func (n *naiveRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	for i := 1; ; i++ {
		resp, err := n.next.RoundTrip(req)
		if i == n.attempts || (err == nil && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests) {
			return resp, err
		}
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t := time.NewTimer(n.wait)
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		case <-t.C:
		}
	}
}

// retryableHTTP is go-retryablehttp's standard client with its defaults
// (waits from 1s, Retry-After honoured), its logger off and RetryMax 3.
func retryableHTTP(base http.RoundTripper, _ *observer) (http.RoundTripper, error) {
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: base}
	c.Logger = nil
	c.RetryMax = 3
	return &retryablehttp.RoundTripper{Client: c}, nil
}

// failsafeGo is failsafe-go's HTTP round tripper: its HTTP retry policy
// capped at 4 attempts, outside its circuit breaker at its documented
// defaults (opens on one failure, closes on one success, 1 minute delay),
// outside a 1s timeout per attempt.
func failsafeGo(base http.RoundTripper, obs *observer) (http.RoundTripper, error) {
	rp := failsafehttp.NewRetryPolicyBuilder().WithMaxAttempts(4).Build()
	cb := circuitbreaker.NewBuilder[*http.Response]().
		OnStateChanged(func(circuitbreaker.StateChangedEvent) { obs.breakerChanged() }).
		Build()
	return failsafehttp.NewRoundTripper(base, rp, cb, timeout.New[*http.Response](time.Second)), nil
}

// failsafeAdaptive is failsafe-go's adaptive concurrency limiter at its
// defaults, alone: one attempt per call.
func failsafeAdaptive(base http.RoundTripper, _ *observer) (http.RoundTripper, error) {
	return failsafehttp.NewRoundTripper(base, adaptivelimiter.NewWithDefaults[*http.Response]()), nil
}

// pickStacks returns the stacks named in a comma-separated list, in the
// registry's order.
func pickStacks(list string) ([]stack, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []stack
	for _, s := range stacks {
		if want[s.name] {
			out = append(out, s)
			delete(want, s.name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("unknown stack %q (known: %s)", n, defaultStacks())
	}
	return out, nil
}

// allStacks names every stack in the registry, the extra variants included.
func allStacks() string {
	var ns []string
	for _, s := range stacks {
		ns = append(ns, s.name)
	}
	return strings.Join(ns, ",")
}
