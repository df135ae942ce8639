package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Header names of the IETF httpapi RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers), which [Middleware] sends.
const (
	// PolicyHeader lists the quotas a request was checked against:
	// `"tenant";q=100;w=60` is 100 requests per 60 seconds.
	PolicyHeader = "RateLimit-Policy"
	// StateHeader gives, per quota, the requests remaining (r) and the
	// seconds until the quota is whole again (t); when none remains, t is
	// instead the seconds until the next request would be admitted:
	// `"tenant";r=0;t=3`.
	StateHeader = "RateLimit"
)

// maxSFInt is the largest Structured Field integer (RFC 9651).
const maxSFInt = 999_999_999_999_999

type limit struct {
	a   Admitter
	key func(*http.Request) string
}

type limitOption limit

func (o limitOption) apply(c *config) {
	c.limits = append(c.limits, limit(o))
	c.setServerOnly("WithLimit")
}

// WithLimit adds, to a [Middleware], one more quota every request is checked
// against: a, under the key key returns (a nil key uses the client's IP
// address). With several quotas, per tenant and per endpoint say, a request
// goes on only if every one admits it, and every one is reported in the
// headers. A request turned away by one quota still counts against the
// others that admitted it. Only for Middleware.
func WithLimit(a Admitter, key func(*http.Request) string) Option {
	return limitOption{a: a, key: key}
}

// Middleware returns HTTP middleware that admits each request through a,
// under the key that key returns for it (a nil key uses the client's IP
// address, from Request.RemoteAddr; behind a proxy, take it from the
// header the proxy sets). More quotas are added with [WithLimit].
//
// A request every quota admits goes on to the next handler, and its
// response carries the [PolicyHeader] and [StateHeader] fields, so that a
// client can pace itself before it is turned away. A request some quota
// turns away gets 429 Too Many Requests with the same fields, a
// Retry-After in whole seconds (rounded up) and an application/problem+json
// body. A request an admitter cannot decide (ErrUnavailable: a shared
// limiter whose store is down, set to fail closed) gets 503 Service
// Unavailable with Retry-After: 1. The fields are Structured Fields (RFC
// 9651), serialized with github.com/dunglas/httpsfv.
//
// Keys may be chosen by clients (a tenant header, an API key): admitters
// keep at most [MaxKeyLen] bytes per key, hashing longer ones.
//
// Of the options, [WithLimit], [WithName], [WithMeterProvider] and
// [WithTracerProvider] apply. Every decision is counted in resilience.events
// (allowed or rejected) and added as a span event to the request's span.
// Middleware panics if a is nil or an option does not apply.
func Middleware(a Admitter, key func(*http.Request) string, opts ...Option) func(http.Handler) http.Handler {
	c := defaultConfig()
	c.limits = []limit{{a: a, key: key}}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.keyedOnly != "" || c.maxWait != 0 {
		panic("ratelimit: Middleware: only WithLimit, WithName, WithMeterProvider and WithTracerProvider apply")
	}
	for i := range c.limits {
		if c.limits[i].a == nil {
			panic("ratelimit: Middleware: admitter is nil")
		}
		if c.limits[i].key == nil {
			c.limits[i].key = clientIP
		}
	}
	tel := newServerTelemetry(&c)
	limits := c.limits
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serve(w, r, next, limits, tel)
		})
	}
}

func serve(w http.ResponseWriter, r *http.Request, next http.Handler, limits []limit, tel *serverTelemetry) {
	var buf [4]Decision
	ds := buf[:0]
	tctx := tel.context(r)
	var failed error
	for _, l := range limits {
		d, err := l.a.Admit(r.Context(), l.key(r))
		if err != nil {
			failed = err
			tel.unavailable(tctx, err)
			continue
		}
		ds = append(ds, d)
	}
	writeFields(w.Header(), ds)
	if failed != nil {
		w.Header().Set("Retry-After", "1")
		problem(w, http.StatusServiceUnavailable, "the rate limiter cannot decide at the moment")
		return
	}
	strictest := -1
	for i, d := range ds {
		if !d.Allowed && (strictest < 0 || d.RetryAfter > ds[strictest].RetryAfter) {
			strictest = i
		}
	}
	if strictest < 0 {
		tel.allowed(tctx, ds)
		next.ServeHTTP(w, r)
		return
	}
	d := ds[strictest]
	tel.rejected(tctx, d)
	w.Header().Set("Retry-After", strconv.FormatInt(seconds(d.RetryAfter, 1), 10))
	problem(w, http.StatusTooManyRequests, fmt.Sprintf("quota %q exceeded; retry in %v", d.Quota.Name, d.RetryAfter.Round(time.Millisecond)))
}

// clientIP is the default key: the client's IP address.
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// seconds returns d in whole seconds, rounded up, at least lo and at most
// the largest Structured Field integer.
func seconds(d time.Duration, lo int64) int64 {
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return min(max(s, lo), maxSFInt)
}

// writeFields sets the RateLimit fields for the decisions that carry a
// quota.
func writeFields(h http.Header, ds []Decision) {
	policies, states := make(httpsfv.List, 0, len(ds)), make(httpsfv.List, 0, len(ds))
	for _, d := range ds {
		if d.Quota == (Quota{}) {
			continue
		}
		p, s := fieldItems(d)
		policies = append(policies, p)
		states = append(states, s)
	}
	if len(policies) == 0 {
		return
	}
	// The items are built from validated quotas and bounded integers, so
	// Marshal cannot fail; a quota that is somehow invalid is left out
	// rather than sent malformed.
	if v, err := httpsfv.Marshal(policies); err == nil {
		h.Set(PolicyHeader, v)
	}
	if v, err := httpsfv.Marshal(states); err == nil {
		h.Set(StateHeader, v)
	}
}

// fieldItems returns d's items of the RateLimit-Policy and RateLimit fields.
func fieldItems(d Decision) (policy, state httpsfv.Item) {
	policy = httpsfv.NewItem(d.Quota.Name)
	policy.Params.Add("q", min(d.Quota.Limit, maxSFInt))
	policy.Params.Add("w", seconds(d.Quota.Window, 1))
	state = httpsfv.NewItem(d.Quota.Name)
	remaining := min(max(d.Remaining, 0), maxSFInt)
	state.Params.Add("r", remaining)
	t := d.Reset
	if remaining == 0 {
		t = d.RetryAfter
	}
	state.Params.Add("t", seconds(t, 0))
	return policy, state
}

// problem writes an RFC 9457 problem+json response.
func problem(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// context returns the context telemetry reads the request's attributes
// from: the HTTP method of a call a server received.
func (t *serverTelemetry) context(r *http.Request) context.Context {
	if !t.on() {
		return r.Context()
	}
	ctx := telemetry.Incoming(r.Context(), false)
	return resilience.WithCall(ctx, resilience.Call{Method: r.Method})
}
