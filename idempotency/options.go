package idempotency

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Guard] and of [Middleware].
const (
	DefaultTTL            = 24 * time.Hour
	DefaultLease          = time.Minute
	DefaultMaxKeyLength   = 255
	DefaultMaxResponse    = 1 << 20
	DefaultMaxRequestBody = 1 << 20
)

// An Option configures a [Guard], [Middleware] or a [Keyer]. Each option
// says which it applies to; the constructors panic, naming the option, when
// given one that does not apply.
type Option interface{ apply(*config) }

type config struct {
	ttl, lease  time.Duration
	wait        time.Duration
	failOpen    bool
	maxKeyLen   int
	maxResponse int
	bare        bool

	// Middleware only.
	required    map[string]bool
	maxBody     int64
	fingerprint func(r *http.Request, body []byte) string
	principal   func(r *http.Request) string
	// Guard users that are not HTTP (resiliencegrpc), and Middleware when
	// principal is nil.
	ctxPrincipal func(ctx context.Context) string

	serverOnly string // the first server-only option given, for NewKeyer's panic
	tel        telemetry.Config
}

func defaultConfig() config {
	return config{
		ttl: DefaultTTL, lease: DefaultLease,
		maxKeyLen: DefaultMaxKeyLength, maxResponse: DefaultMaxResponse,
		maxBody: DefaultMaxRequestBody,
	}
}

func (c *config) server(name string) {
	if c.serverOnly == "" {
		c.serverOnly = name
	}
}

func (c *config) validate(fn string) {
	switch {
	case c.ttl <= 0:
		panic(fmt.Sprintf("idempotency: %s: WithTTL: d must be positive, got %v", fn, c.ttl))
	case c.lease <= 0:
		panic(fmt.Sprintf("idempotency: %s: WithLease: d must be positive, got %v", fn, c.lease))
	case c.wait < 0:
		panic(fmt.Sprintf("idempotency: %s: WithWait: d must not be negative, got %v", fn, c.wait))
	case c.maxKeyLen < 1:
		panic(fmt.Sprintf("idempotency: %s: WithMaxKeyLength: n must be at least 1, got %d", fn, c.maxKeyLen))
	case c.maxResponse < 0:
		panic(fmt.Sprintf("idempotency: %s: WithMaxResponse: n must not be negative, got %d", fn, c.maxResponse))
	case c.maxBody < 0:
		panic(fmt.Sprintf("idempotency: %s: WithMaxRequestBody: n must not be negative, got %d", fn, c.maxBody))
	}
}

type ttlOption time.Duration

func (o ttlOption) apply(c *config) { c.ttl = time.Duration(o); c.server("WithTTL") }

// WithTTL sets how long a completed request's record is kept and replayed
// (default 24 hours). Guard and Middleware; d must be positive.
func WithTTL(d time.Duration) Option { return ttlOption(d) }

type leaseOption time.Duration

func (o leaseOption) apply(c *config) { c.lease = time.Duration(o); c.server("WithLease") }

// WithLease sets how long a reservation holds its key while its request
// runs (default 1 minute). If the instance running the request dies, the
// key is free again once the lease runs out. Set it above the longest time
// a handler may run (its timeout): a request still running when its lease
// runs out may be run again by a retry, and its own record is then refused
// (fencing), so that it cannot overwrite the newer one. Guard and
// Middleware; d must be positive.
func WithLease(d time.Duration) Option { return leaseOption(d) }

type waitOption time.Duration

func (o waitOption) apply(c *config) { c.wait = time.Duration(o); c.server("WithWait") }

// WithWait makes a repeat that arrives while the first request with its key
// still runs wait up to d for the first one's record, and replay it,
// instead of failing at once with a conflict (409 Conflict, gRPC Aborted),
// the default. If the first request fails (its key is released) or its
// lease runs out, the waiting one runs. Guard and Middleware; d must not be
// negative.
func WithWait(d time.Duration) Option { return waitOption(d) }

type failOpenOption struct{}

func (failOpenOption) apply(c *config) { c.failOpen = true; c.server("WithFailOpen") }

// WithFailOpen makes requests run, without deduplication, when the store
// fails. By default they fail (503 Service Unavailable, gRPC Unavailable)
// so that a retry is never run twice: fail open only where running a
// request twice is better than not running it. Either way the failure is
// counted (store_error). Guard and Middleware.
func WithFailOpen() Option { return failOpenOption{} }

type maxKeyLenOption int

func (o maxKeyLenOption) apply(c *config) { c.maxKeyLen = int(o); c.server("WithMaxKeyLength") }

// WithMaxKeyLength bounds the length of a client's key, in bytes (default
// 255); a longer one is rejected (400 Bad Request, gRPC InvalidArgument).
// Guard and Middleware; n must be at least 1.
func WithMaxKeyLength(n int) Option { return maxKeyLenOption(n) }

type maxResponseOption int

func (o maxResponseOption) apply(c *config) { c.maxResponse = int(o); c.server("WithMaxResponse") }

// WithMaxResponse bounds the size of a recorded response (default 1 MiB):
// the whole record, that is the body, header fields and trailers for HTTP,
// the encoded reply or status and metadata for gRPC. A larger response is
// sent to the client but not recorded, and its key is released, so a retry
// runs the request again; it is counted (released, reason too_large).
// Guard and Middleware; n must not be negative.
func WithMaxResponse(n int) Option { return maxResponseOption(n) }

type bareOption struct{}

func (bareOption) apply(c *config) { c.bare = true }

// WithBareKeys accepts and sends keys in the bare form some APIs use
// (Idempotency-Key: 8e03978e-40d5-43e8-bc93-6894a57f9324) besides the
// Structured Field String the IETF draft specifies
// (Idempotency-Key: "8e03978e-..."). Middleware then accepts either form; a
// Keyer sends the bare form. Keys must still be printable ASCII. For all.
func WithBareKeys() Option { return bareOption{} }

type requiredOption []string

func (o requiredOption) apply(c *config) {
	if c.required == nil {
		c.required = make(map[string]bool)
	}
	for _, m := range o {
		c.required[m] = true
	}
	c.server("WithRequired")
}

// WithRequired makes the key required for requests with the given HTTP
// methods ("POST", "PATCH"): one without a key is rejected with 400 Bad
// Request. By default a request without a key passes through. Middleware
// only.
func WithRequired(methods ...string) Option { return requiredOption(methods) }

type maxBodyOption int64

func (o maxBodyOption) apply(c *config) { c.maxBody = int64(o); c.server("WithMaxRequestBody") }

// WithMaxRequestBody bounds how much of a keyed request's body is read to
// fingerprint it (default 1 MiB); a larger body is rejected with 413
// Content Too Large. The body read is given back to the handler in full.
// Middleware only; n must not be negative.
func WithMaxRequestBody(n int64) Option { return maxBodyOption(n) }

type fingerprintOption func(r *http.Request, body []byte) string

func (o fingerprintOption) apply(c *config) { c.fingerprint = o; c.server("WithFingerprint") }

// WithFingerprint sets how a request is told apart from another one with
// the same key: f returns a string that differs when the request does. The
// default is a SHA-256 digest of the method, the path and query, and the
// body. f must not read r.Body (body holds it) and must be safe for
// concurrent use. Middleware only.
func WithFingerprint(f func(r *http.Request, body []byte) string) Option {
	return fingerprintOption(f)
}

type principalOption func(r *http.Request) string

func (o principalOption) apply(c *config) { c.principal = o; c.server("WithPrincipal") }

// WithPrincipal sets whose keys a request's key belongs to: f returns the
// principal (an API key, a tenant, a user id), and a key is looked up among
// its principal's keys only, so that a client can never receive a response
// recorded for another. The default is the request's Authorization header
// (or [WithContextPrincipal], if given); requests without one share one
// space of keys. f must be safe for concurrent use. Middleware only.
func WithPrincipal(f func(r *http.Request) string) Option { return principalOption(f) }

type ctxPrincipalOption func(ctx context.Context) string

func (o ctxPrincipalOption) apply(c *config) { c.ctxPrincipal = o; c.server("WithContextPrincipal") }

// WithContextPrincipal is [WithPrincipal] for a principal that an earlier
// middleware or interceptor (authentication) put in the request's context.
// It is how a gRPC server interceptor (resiliencegrpc) learns the
// principal; its default there is the "authorization" metadata. Guard and
// Middleware.
func WithContextPrincipal(f func(ctx context.Context) string) Option { return ctxPrincipalOption(f) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the Guard, Middleware or Keyer in its telemetry (the
// resilience.name attribute). For all.
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the metrics (resilience.events).
// The default is the global provider as it is when the value is built; the
// no-op provider of go.opentelemetry.io/otel/metric/noop turns metrics off.
// For all.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off a Keyer's metrics, so that their series stay bounded
// however many hosts it sees. A Guard or Middleware records no server
// address anyway (its calls are incoming). Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider. No span is started: each
// decision is added as an event to the recording span in the request's
// context. The default is the global provider. For all.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }
