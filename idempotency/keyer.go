package idempotency

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/resilience-go/resilience"
)

// A Keyer is a client policy that gives an idempotency key to each unsafe
// call that has none, so that a retrying policy inside it may send the call
// again and the server can run it once. A call is unsafe when its
// description (resilience.CallFrom) says it is not idempotent: an HTTP POST
// or PATCH without an Idempotency-Key header, a gRPC method not declared
// idempotent and without idempotency-key metadata. A key the caller set
// itself makes the call idempotent already, and is kept as it is.
//
// The key is made once per call, with crypto/rand ([NewKey]), and is the
// same on every attempt and hedge: put the Keyer outside the retrying
// policies. resiliencehttp sends it as the Idempotency-Key header (a
// Structured Field String, or bare with [WithBareKeys]), resiliencegrpc as
// idempotency-key metadata.
//
// Stamping keys is opt-in and scoped, because a key makes the call
// retryable, which is safe only against a server that deduplicates by key
// (such as [Middleware]). Note that it also changes what net/http's own
// Transport does: it resends a request that carries an Idempotency-Key
// header (any method) when a reused keep-alive connection breaks before
// the response, as it does for a GET.
//
// Build a Keyer with [NewKeyer]. The zero value has an empty scope: it
// stamps no key, and runs every call as it is.
type Keyer struct {
	hosts   map[string]bool // "host" or "host:port"
	methods map[string]bool // "/pkg.Service/Method" or "/pkg.Service/*"
	all     bool
	bare    bool
	tel     *telemetryState
}

// NewKeyer returns a Keyer for the calls in scope. Each entry of scope is a
// host ("api.example.com", any port), a host and port
// ("api.example.com:8443"), a gRPC full method ("/pkg.Payments/Charge") or
// service ("/pkg.Payments/*"), or "*" for every call. Options that apply:
// WithBareKeys, WithName, WithMeterProvider, WithTracerProvider. It panics
// if scope is empty, an entry is malformed, or an option applies to the
// server side only.
func NewKeyer(scope []string, opts ...Option) *Keyer {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	if c.serverOnly != "" {
		panic(fmt.Sprintf("idempotency: NewKeyer: %s applies to Guard and Middleware only", c.serverOnly))
	}
	if len(scope) == 0 {
		panic("idempotency: NewKeyer: empty scope (name the hosts or gRPC methods that deduplicate by key, or \"*\")")
	}
	k := &Keyer{hosts: make(map[string]bool), methods: make(map[string]bool), bare: c.bare}
	for _, e := range scope {
		switch {
		case e == "*":
			k.all = true
		case strings.HasPrefix(e, "/"):
			svc, m, ok := strings.Cut(e[1:], "/")
			if !ok || svc == "" || m == "" || strings.Contains(m, "/") {
				panic(fmt.Sprintf("idempotency: NewKeyer: %q is not a gRPC full method (\"/pkg.Service/Method\" or \"/pkg.Service/*\")", e))
			}
			k.methods[e] = true
		case e == "" || strings.ContainsAny(e, "/ "):
			panic(fmt.Sprintf("idempotency: NewKeyer: %q is not a host, host:port, gRPC method or \"*\"", e))
		default:
			k.hosts[strings.ToLower(e)] = true
		}
	}
	k.tel = newTelemetry(c.tel)
	return k
}

// Do runs op, with a key in its call's description when the call is unsafe
// and in scope (see [Keyer]). It implements resilience.Policy.
func (k *Keyer) Do(ctx context.Context, op func(context.Context) error) error {
	c, ok := resilience.CallFrom(ctx)
	if !ok || c.Idempotent || c.IdempotencyKey != "" || !k.covers(c) {
		return op(ctx)
	}
	ctx = resilience.WithIdempotencyKey(ctx, NewKey())
	if k.bare {
		ctx = context.WithValue(ctx, bareKey{}, true)
	}
	k.tel.event(ctx, eventStamped, "")
	return op(ctx)
}

func (k *Keyer) covers(c resilience.Call) bool {
	if k.all {
		return true
	}
	if strings.HasPrefix(c.Method, "/") {
		if k.methods[c.Method] {
			return true
		}
		if i := strings.LastIndexByte(c.Method, '/'); i > 0 && k.methods[c.Method[:i+1]+"*"] {
			return true
		}
	}
	if len(k.hosts) == 0 || c.Target == "" {
		return false
	}
	t := strings.ToLower(c.Target)
	if k.hosts[t] {
		return true
	}
	if h, _, err := net.SplitHostPort(t); err == nil {
		return k.hosts[h]
	}
	return false
}
