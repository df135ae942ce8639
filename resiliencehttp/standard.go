package resiliencehttp

import (
	"net/http"

	"github.com/resilience-go/resilience/standard"
)

// Standard returns a Transport that sends requests through base (nil means
// http.DefaultTransport) under the standard pipeline built by
// standard.New: a total timeout, a per-host rate limit and idempotency
// keys if configured, retries (or hedging) paid for from a per-host retry
// budget, a per-host pushback gate (holds calls to a host until its pause
// ends, once most of its recent answers were 429 or 503 with Retry-After,
// or a RateLimit field without a partition key says the client's quota is
// spent; see the package documentation), a per-host circuit breaker, a
// per-host bulkhead if configured, a per-host adaptive concurrency limit
// if configured (package adaptive: a request beyond it fails at once with
// an error matching adaptive.ErrLimited), and a per-attempt timeout. The
// package documentation of
// standard gives the order and every default. opts change each part. It
// returns an error if the configuration is invalid.
func Standard(base http.RoundTripper, opts ...standard.Option) (*Transport, error) {
	p, err := standard.New(opts...)
	if err != nil {
		return nil, err
	}
	return NewTransport(base, p), nil
}
