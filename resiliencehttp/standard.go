package resiliencehttp

import (
	"net/http"

	"github.com/resilience-go/resilience/standard"
)

// Standard returns a Transport that sends requests through base (nil means
// http.DefaultTransport) under the standard pipeline built by
// standard.New: per-host rate limit if configured, total timeout (30s),
// retry (3 retries with jittered exponential backoff), a per-host pushback
// gate (holds calls to a host that answered Retry-After, or whose RateLimit
// field says no quota is left, until the pause ends), a per-host circuit
// breaker (opens at 50% failures over 30s once 20 calls were counted, for
// 5s), a per-host bulkhead if configured, and a per-attempt timeout (10s).
// opts change each part. It returns an error if the configuration is
// invalid.
func Standard(base http.RoundTripper, opts ...standard.Option) (*Transport, error) {
	p, err := standard.New(opts...)
	if err != nil {
		return nil, err
	}
	return NewTransport(base, p), nil
}
