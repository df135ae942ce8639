package standard

import (
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
)

type idempotencyOption []string

func (o idempotencyOption) apply(c *config) {
	if c.idemScope == nil {
		c.idemScope = []string{} // given, even if empty: New reports it
	}
	c.idemScope = append(c.idemScope, o...)
}

// WithIdempotencyKeys adds an idempotency.Keyer to the pipeline, right
// after the rate limit and before the total timeout: every unsafe call in
// scope (an HTTP POST or PATCH, a gRPC method not declared idempotent)
// that has no idempotency key gets one, the same on every retry, and so
// becomes retryable. Each entry of scope is a host ("api.example.com"), a
// host and port, a gRPC full method ("/pkg.Payments/Charge") or service
// ("/pkg.Payments/*"), or "*" for every call; see idempotency.NewKeyer.
//
// Name only servers that deduplicate by key (such as idempotency.Middleware
// or resiliencegrpc.IdempotencyServerInterceptor): to any other server, a
// retried POST is a second POST. There is no keyer by default; New returns
// an error if scope is empty or an entry is malformed.
func WithIdempotencyKeys(scope ...string) Option { return idempotencyOption(scope) }

// keyer returns the pipeline's Keyer, or nil.
func keyer(c *config) resilience.Policy {
	if c.idemScope == nil {
		return nil
	}
	if len(c.idemScope) == 0 {
		panic("standard: WithIdempotencyKeys: empty scope")
	}
	opts := telemetryOpts(c, idempotency.WithName, idempotency.WithMeterProvider, idempotency.WithTracerProvider, idempotency.WithoutServerAddress)
	return idempotency.NewKeyer(c.idemScope, opts...)
}
