package benchmarks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/sony/gobreaker/v2"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

// BenchmarkDo is the success path of a function call under a total timeout
// and retry: the overhead a caller pays when nothing goes wrong.
func BenchmarkDo(b *testing.B) {
	ctx := context.Background()
	op := func(context.Context) (int, error) { return 1, nil }

	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := op(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("resilience", func(b *testing.B) {
		p := resilience.Chain(timeout.New(time.Second), retry.New())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := resilience.Do(ctx, p, op); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe-go", func(b *testing.B) {
		// Outermost first, as in ours: a total timeout around the retry.
		// The op gets the execution's context so that the timeout can
		// cancel it, as ours does.
		ex := failsafe.With[int](fstimeout.New[int](time.Second), retrypolicy.NewWithDefaults[int]())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ex.GetWithExecution(func(e failsafe.Execution[int]) (int, error) {
				return op(e.Context())
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBreaker is the success path of a closed circuit breaker, each
// library with its defaults.
func BenchmarkBreaker(b *testing.B) {
	ctx := context.Background()

	b.Run("resilience", func(b *testing.B) {
		br := breaker.New()
		op := func(context.Context) error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Do(ctx, op); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[any](circuitbreaker.NewWithDefaults[any]())
		op := func() error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(op); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{})
		op := func() (any, error) { return nil, nil }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cb.Execute(op); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Our breaker is built on gobreaker's Execute (the floor it adds to);
	// the two-step API, which it no longer uses on this path, costs a
	// closure per call.
	b.Run("gobreaker-twostep", func(b *testing.B) {
		cb := gobreaker.NewTwoStepCircuitBreaker[any](gobreaker.Settings{})
		b.ReportAllocs()
		for b.Loop() {
			done, err := cb.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(nil)
		}
	})
}

// BenchmarkHTTPGet is a GET of a two-byte body from a loopback server. Every
// sub-benchmark sends through its own fresh http.Transport of the same
// configuration, so connection reuse is alike for all.
func BenchmarkHTTPGet(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer s.Close()

	clientOf := func(rt func(base *http.Transport) http.RoundTripper) func(base *http.Transport) (do func() error) {
		return func(base *http.Transport) func() error {
			c := &http.Client{Transport: rt(base)}
			req, err := http.NewRequest(http.MethodGet, s.URL, nil)
			if err != nil {
				b.Fatal(err)
			}
			return func() error { return readAll(c.Do(req)) }
		}
	}

	for _, bc := range []struct {
		name string
		do   func(base *http.Transport) func() error
	}{
		{"bare", clientOf(func(base *http.Transport) http.RoundTripper { return base })},
		// What a caller without a library would write: a deadline per
		// request. net/http does more work for a request whose context
		// can end, and every library here gives it such a context.
		{"bare-with-deadline", func(base *http.Transport) func() error {
			c := &http.Client{Transport: base}
			req, err := http.NewRequest(http.MethodGet, s.URL, nil)
			if err != nil {
				b.Fatal(err)
			}
			return func() error {
				ctx, cancel := context.WithTimeout(req.Context(), 30*time.Second)
				defer cancel()
				return readAll(c.Do(req.WithContext(ctx)))
			}
		}},
		{"resilience-timeout+retry+timeout", clientOf(func(base *http.Transport) http.RoundTripper {
			return resiliencehttp.NewTransport(base, timeout.New(30*time.Second), retry.New(), timeout.New(10*time.Second))
		})},
		{"resilience-standard", clientOf(func(base *http.Transport) http.RoundTripper {
			t, err := resiliencehttp.Standard(base)
			if err != nil {
				b.Fatal(err)
			}
			return t
		})},
		{"failsafe-go-retry", clientOf(func(base *http.Transport) http.RoundTripper {
			return failsafehttp.NewRoundTripper(base, failsafehttp.NewRetryPolicyBuilder().Build())
		})},
		{"retryablehttp", func(base *http.Transport) func() error {
			c := newRetryableClient(base)
			req, err := retryablehttp.NewRequest(http.MethodGet, s.URL, nil)
			if err != nil {
				b.Fatal(err)
			}
			return func() error { return readAll(c.Do(req)) }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			base := newBaseTransport()
			defer base.CloseIdleConnections()
			do := bc.do(base)
			b.ReportAllocs()
			for b.Loop() {
				if err := do(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// newBaseTransport returns a transport configured as http.DefaultTransport,
// owned by the caller, who closes its idle connections.
func newBaseTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

// newRetryableClient returns a go-retryablehttp client with its defaults,
// sending through base, with its per-request debug logging turned off.
func newRetryableClient(base *http.Transport) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: base}
	c.Logger = nil
	return c
}

// readAll reads and closes the response body, and fails on a status other
// than 200.
func readAll(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return err
}
