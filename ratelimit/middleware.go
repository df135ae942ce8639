package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Header names of the IETF httpapi RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers), which [Middleware] sends.
//
// The items of a quota kept per key (any key function but [Global]) carry
// the draft's partition key parameter, pk: a digest of the request's key,
// the first 12 bytes of its SHA-256 as a Byte Sequence
// (`pk=:giszrYfBSKCiClun:` for the key "acme"). A client tells by it that
// a spent quota is one tenant's, not the whole server's. The key itself is
// never sent: it may be sensitive, and it is unbounded. The digest is
// stable (the same key gives the same pk on every replica and release) but
// not secret: whoever can guess a key can compute its pk. A quota shared by
// every request ([Global]) sends no pk.
const (
	// PolicyHeader lists the quotas a request was checked against:
	// `"tenant";q=100;w=60;pk=:giszrYfBSKCiClun:` is 100 requests per 60
	// seconds for the partition "acme". The window w is in whole seconds:
	// a quota whose window is not a whole number of seconds (100ms, 1.5s)
	// is announced over the next whole number, with q scaled to it and
	// rounded down (10 per 100ms is q=100;w=1), so that the rate a client
	// reads, q / w, is never above the quota's.
	PolicyHeader = "RateLimit-Policy"
	// StateHeader gives, per quota, the requests remaining (r) and the
	// seconds until the quota is whole again (t); when none remains, t is
	// instead the seconds until the next request would be admitted:
	// `"tenant";r=0;t=3;pk=:giszrYfBSKCiClun:`.
	StateHeader = "RateLimit"
)

// pkLen is the length of the digest sent as a partition key (pk).
const pkLen = 12

// maxSFInt is the largest Structured Field integer (RFC 9651).
const maxSFInt = 999_999_999_999_999

type limit struct {
	a   Admitter
	key func(*http.Request) string
	// shared is set for the key function Global: one partition for
	// every request, sent without pk.
	shared bool
}

// Global is the key function of a quota that every request shares: the
// whole server, not a tenant or a client address. It returns "". Pass Global
// itself to [Middleware] or [WithLimit]: its quota's RateLimit items carry
// no pk parameter, and a client reads its r=0 as the whole server being
// out. Any other key function, even one that returns a constant, is taken
// as a quota per key, whose items name their partition with pk.
func Global(*http.Request) string { return "" }

// globalPC identifies Global among key functions (function values cannot
// be compared, but a top-level function has one code pointer).
var globalPC = reflect.ValueOf(Global).Pointer()

// isGlobal reports whether f is Global.
func isGlobal(f func(*http.Request) string) bool {
	return f != nil && reflect.ValueOf(f).Pointer() == globalPC
}

type limitOption limit

func (o limitOption) apply(c *config) {
	c.limits = append(c.limits, limit(o))
	c.setServerOnly("WithLimit")
}

// WithLimit adds, to a [Middleware], one more quota every request is checked
// against: a, under the key key returns (a nil key uses the client's IP
// address; [Global] makes it one quota for every request). With several
// quotas, per tenant and per endpoint say, a request goes on only if every
// one admits it, and every one is reported in the headers. A request
// turned away by one quota still counts against the others that admitted
// it. Only for Middleware.
func WithLimit(a Admitter, key func(*http.Request) string) Option {
	return limitOption{a: a, key: key}
}

// Middleware returns HTTP middleware that admits each request through a,
// under the key that key returns for it (a nil key uses the client's IP
// address, from Request.RemoteAddr; behind a proxy, take it from the
// header the proxy sets; [Global] puts every request under one key). More
// quotas are added with [WithLimit].
//
// A request every quota admits goes on to the next handler, and its
// response carries the [PolicyHeader] and [StateHeader] fields, so that a
// client can pace itself before it is turned away. A request some quota
// turns away gets 429 Too Many Requests with the same fields, a
// Retry-After in whole seconds (rounded up) and an application/problem+json
// body. A request an admitter cannot decide (ErrUnavailable: a shared
// limiter whose store is down, set to fail closed) gets 503 Service
// Unavailable with Retry-After: 1. The fields are Structured Fields (RFC
// 9651), serialized with github.com/dunglas/httpsfv; each item of a quota
// kept per key carries the partition key parameter pk (see
// [PolicyHeader]). Each Middleware adds its own field lines, so that
// stacked Middleware layers (or fields set before) are all sent: a client
// reads one list from them all.
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
		c.limits[i].shared = isGlobal(c.limits[i].key)
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
	var (
		buf   [4]Decision
		pkBuf [4][]byte
	)
	ds, pks := buf[:0], pkBuf[:0] // pks[i] is ds[i]'s partition key, nil for Global
	tctx := tel.context(r)
	var failed error
	for _, l := range limits {
		key := l.key(r)
		d, err := l.a.Admit(r.Context(), key)
		if err != nil {
			failed = err
			tel.unavailable(tctx, err)
			continue
		}
		ds = append(ds, d)
		var pk []byte
		if !l.shared && d.Quota != (Quota{}) {
			pk = partitionKey(key)
		}
		pks = append(pks, pk)
	}
	writeFields(w.Header(), ds, pks)
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

// partitionKey returns the pk parameter's value for key: the first pkLen
// bytes of its SHA-256.
func partitionKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:pkLen:pkLen]
}

// writeFields adds the RateLimit fields for the decisions that carry a
// valid quota, with pks[i] as ds[i]'s partition key (none if nil). It adds
// field lines rather than setting them, so that the fields of another
// layer stay.
func writeFields(h http.Header, ds []Decision, pks [][]byte) {
	policies, states := make(httpsfv.List, 0, len(ds)), make(httpsfv.List, 0, len(ds))
	for i, d := range ds {
		// A quota that is not valid cannot be described faithfully (and
		// one left empty says the decision knows none): it is left out
		// rather than sent malformed.
		if d.Quota == (Quota{}) || d.Quota.Validate() != nil {
			continue
		}
		p, s := fieldItems(d, pks[i])
		policies = append(policies, p)
		states = append(states, s)
	}
	if len(policies) == 0 {
		return
	}
	// The items are built from validated quotas and bounded integers, so
	// Marshal cannot fail.
	if v, err := httpsfv.Marshal(policies); err == nil {
		h.Add(PolicyHeader, v)
	}
	if v, err := httpsfv.Marshal(states); err == nil {
		h.Add(StateHeader, v)
	}
}

// fieldItems returns d's items of the RateLimit-Policy and RateLimit fields,
// with pk as their partition key unless it is nil.
func fieldItems(d Decision, pk []byte) (policy, state httpsfv.Item) {
	q, w := policyQuota(d.Quota)
	policy = httpsfv.NewItem(d.Quota.Name)
	policy.Params.Add("q", q)
	policy.Params.Add("w", w)
	state = httpsfv.NewItem(d.Quota.Name)
	remaining := min(max(d.Remaining, 0), maxSFInt)
	state.Params.Add("r", remaining)
	t := d.Reset
	if remaining == 0 {
		t = d.RetryAfter
	}
	state.Params.Add("t", seconds(t, 0))
	if pk != nil {
		policy.Params.Add("pk", pk)
		state.Params.Add("pk", pk)
	}
	return policy, state
}

// policyQuota returns the q and w a valid quota is announced with: w is
// its window in whole seconds, rounded up, and q its limit scaled to w,
// rounded down, so that q / w is at most the quota's rate (and q is
// Limit when the window is a whole number of seconds).
func policyQuota(quota Quota) (q, w int64) {
	w = seconds(quota.Window, 1)
	// Limit × w s / Window, exactly: Window >= 1ms and w s < Window + 1s,
	// so the quotient is at most about 1001 × Limit and fits.
	hi, lo := bits.Mul64(uint64(quota.Limit), uint64(w)*uint64(time.Second))
	n, _ := bits.Div64(hi, lo, uint64(quota.Window))
	return int64(min(n, maxSFInt)), w
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
