package shed

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// PriorityHeader is the request header [Middleware] reads a request's
// priority from by default: "critical", "default" or "sheddable" (see
// [ParsePriority]: any other value is Default). gRPC clients send it as
// the metadata key "resilience-priority".
const PriorityHeader = "Resilience-Priority"

// A MiddlewareOption configures a [Middleware].
type MiddlewareOption interface{ applyMiddleware(*middlewareConfig) }

type middlewareConfig struct {
	health   func(*http.Request) bool
	priority func(*http.Request) Priority
}

type healthOption func(*http.Request) bool

func (o healthOption) applyMiddleware(c *middlewareConfig) {
	if o == nil {
		panic("shed: WithHealthCheck: f is nil")
	}
	c.health = o
}

// WithHealthCheck marks the requests for which f returns true as health
// checks: they are never shed and never wait, whatever the load, and do
// not count against the bound, even while the Shedder drains (the health
// handler itself says whether the server is ready). Without it, no HTTP
// request is a health check. f runs for every request and must be cheap,
// a path compare:
//
//	shed.WithHealthCheck(func(r *http.Request) bool { return r.URL.Path == "/healthz" })
//
// It panics if f is nil.
func WithHealthCheck(f func(*http.Request) bool) MiddlewareOption { return healthOption(f) }

type priorityOption func(*http.Request) Priority

func (o priorityOption) applyMiddleware(c *middlewareConfig) {
	if o == nil {
		panic("shed: WithPriority: f is nil")
	}
	c.priority = o
}

// WithPriority sets how a request's priority is found (default: the
// [PriorityHeader] header, parsed by [ParsePriority]), for a server that
// ranks requests by path, method or tenant instead, or does not trust its
// clients' header. It panics if f is nil.
func WithPriority(f func(*http.Request) Priority) MiddlewareOption { return priorityOption(f) }

// headerPriority is the default priority: the PriorityHeader header.
func headerPriority(r *http.Request) Priority {
	return ParsePriority(r.Header.Get(PriorityHeader))
}

// Middleware returns HTTP middleware that runs each request through s:
// a request admitted runs the next handler and releases its slot when the
// handler returns; a request shed gets 503 Service Unavailable with a
// Retry-After in whole seconds ([RejectedError].RetryAfter: at least 1)
// and an application/problem+json body that names the reason, and never
// reaches the next handler. While s drains, shed responses also carry
// Connection: close, so that the client takes its next request to
// another replica (HTTP/1.1; HTTP/2 has no such field, and Go's server
// drops it). Health checks ([WithHealthCheck]) bypass s. When the next
// handler panics, its slot is released and the panic goes on.
//
// Put it outermost, before rate limits and idempotency
// (ratelimit.Middleware, idempotency.Middleware): a request shed then
// never touches a quota or an idempotency record. The library's HTTP
// client (resiliencehttp.Standard) reads the 503's Retry-After: its
// pushback gate holds the following calls to this host until it ends.
//
// Every decision of s is counted and added to the request's span (see
// docs/telemetry.md); the call attributes are the HTTP method only.
// Middleware panics if s is nil.
func Middleware(s *Shedder, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	if s == nil {
		panic("shed: Middleware: s is nil")
	}
	c := middlewareConfig{priority: headerPriority}
	for _, o := range opts {
		o.applyMiddleware(&c)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.health != nil && c.health(r) {
				next.ServeHTTP(w, r)
				return
			}
			ctx := r.Context()
			if s.tel.Metrics() || s.tel.Tracer() != nil {
				ctx = resilience.WithCall(telemetry.Incoming(ctx, false), resilience.Call{Method: r.Method})
			}
			release, err := s.Acquire(ctx, c.priority(r))
			if err != nil {
				writeShed(w, err.(*RejectedError))
				return
			}
			defer release()
			next.ServeHTTP(w, r)
		})
	}
}

// writeShed writes the response of a request shed with e: 503 Service
// Unavailable, Retry-After, Connection: close when the Shedder drains,
// and a problem+json body.
func writeShed(w http.ResponseWriter, e *RejectedError) {
	h := w.Header()
	h.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(e.RetryAfter), 10))
	if e.Reason == ReasonDraining {
		h.Set("Connection", "close")
	}
	body, _ := json.Marshal(struct {
		Type     string `json:"type"`
		Title    string `json:"title"`
		Status   int    `json:"status"`
		Detail   string `json:"detail"`
		Reason   string `json:"reason"`
		Priority string `json:"priority"`
	}{"about:blank", http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable,
		fmt.Sprintf("the server is overloaded and shed this %s request (%s); retry in %ds", e.Priority, e.Reason, retryAfterSeconds(e.RetryAfter)),
		string(e.Reason), e.Priority.String()})
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Content-Encoding")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(body)
}

// retryAfterSeconds returns d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
