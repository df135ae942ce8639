package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/keyed"
)

// Quota is a server-side limit: Limit requests per Window for each key,
// all of which may come at once. It is what the RateLimit-Policy header
// announces (q and w).
type Quota struct {
	// Name names the quota in the RateLimit headers ("burst",
	// "tenant", ...). It must be 1 to 64 printable ASCII characters.
	Name string
	// Limit is the number of requests a key may make per Window; at
	// least 1.
	Limit int64
	// Window is the period over which Limit applies; at least one
	// millisecond. A key that made Limit requests at once gets one more
	// every Window/Limit.
	Window time.Duration
}

// Validate reports whether q is a usable quota.
func (q Quota) Validate() error {
	switch {
	case q.Name == "" || len(q.Name) > 64:
		return fmt.Errorf("ratelimit: quota name must be 1 to 64 characters, got %q", q.Name)
	case q.Limit < 1 || q.Limit > maxSFInt:
		return fmt.Errorf("ratelimit: quota %q: limit must be between 1 and %d, got %d", q.Name, int64(maxSFInt), q.Limit)
	case q.Window < time.Millisecond:
		return fmt.Errorf("ratelimit: quota %q: window must be at least 1ms, got %v", q.Name, q.Window)
	}
	for i := 0; i < len(q.Name); i++ {
		if c := q.Name[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("ratelimit: quota name must be printable ASCII, got %q", q.Name)
		}
	}
	return nil
}

// Interval returns the time in which one request's worth of quota comes
// back: Window / Limit.
func (q Quota) Interval() time.Duration { return max(q.Window/time.Duration(q.Limit), 1) }

// Decision is an [Admitter]'s answer for one request.
type Decision struct {
	// Allowed reports whether the request may go on.
	Allowed bool
	// Remaining is how many more requests the key may make at once,
	// after this one.
	Remaining int64
	// RetryAfter is how long until the key may make its next request:
	// positive for a request turned away, and for an admitted one that
	// took the last of the quota; zero while Remaining > 0.
	RetryAfter time.Duration
	// Reset is how long until the key's whole quota is available again.
	Reset time.Duration
	// Quota is the quota the decision was taken under. A zero Quota says
	// the decision carries no information about any quota (a limiter that
	// fails open while its store is down): no RateLimit header is sent
	// for it.
	Quota Quota
}

// ErrUnavailable is matched, with errors.Is, by the error of an
// [Admitter] that cannot decide, such as a shared limiter whose store is
// down and which is set to fail closed. [Middleware] answers 503 Service
// Unavailable; the gRPC server interceptors answer Unavailable.
var ErrUnavailable = errors.New("ratelimit: limiter unavailable")

// An Admitter decides whether a server admits a request made under a key
// (a client address, a user, a tenant, an endpoint). [Local] keeps its
// state in memory; the ratelimit/redisrate package shares it between
// replicas through Redis. [Middleware] and [Enforce] take any Admitter.
//
// Keys may come from clients: an Admitter bounds the size of what it keeps
// per key (a key longer than [MaxKeyLen] is kept as its SHA-256 digest).
// Admit returns an error only when it cannot decide; such an error should
// match [ErrUnavailable].
type Admitter interface {
	Admit(ctx context.Context, key string) (Decision, error)
}

// MaxKeyLen bounds the length of a key as limiters keep it; a longer key is
// kept as its SHA-256 digest ([BoundKey]).
const MaxKeyLen = keyed.MaxKeyLen

// BoundKey returns key if it is at most [MaxKeyLen] bytes long, and
// otherwise "sha256:" followed by the hex digest of key, so that a
// client-chosen key never costs more than a fixed amount of memory.
func BoundKey(key string) string {
	if len(key) <= MaxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Local is an [Admitter] that keeps, in memory, one token bucket
// (golang.org/x/time/rate) per key: a bucket of Quota.Limit tokens that
// refills at Limit per Window. It limits a single instance; to share a
// quota between replicas use ratelimit/redisrate. Build it with
// [NewLocal]; it is safe for concurrent use. The zero Local is not usable:
// its Admit returns an error matching [ErrUnavailable].
//
// Its buckets live in a bounded registry. A key is forgotten only once its
// bucket is full again, so forgetting it changes nothing: a key idle for
// the longer of [WithIdleTimeout] and the quota's Window (by then its
// bucket has refilled) is dropped, as Redis expires a key of
// ratelimit/redisrate once its quota is whole. The bound, [WithMaxKeys],
// is the exception: when a new key would exceed it, the least recently
// used tenth of the keys are forgotten, full or not, and a forgotten key
// whose quota was partly spent starts again with a full quota. Size the
// bound above the number of keys active within one window: past it, a
// client that cycles through more keys than the bound gets each key's
// quota more than once per window.
type Local struct {
	q   Quota
	reg *keyed.Registry[*rate.Limiter]
	now func() time.Time
}

// errZeroLocal is the error of a zero Local.
var errZeroLocal = fmt.Errorf("%w: the zero ratelimit.Local is not usable: build it with NewLocal", ErrUnavailable)

// NewLocal returns a local admitter for quota q. Of the options, only
// [WithMaxKeys] and [WithIdleTimeout] apply; an idle timeout shorter than
// q.Window is raised to it. It panics if q is invalid ([Quota.Validate])
// or an option does not apply.
func NewLocal(q Quota, opts ...Option) *Local {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	if err := q.Validate(); err != nil {
		panic("ratelimit: NewLocal: " + err.Error()[len("ratelimit: "):])
	}
	c.validate("NewLocal", 1, 1, true)
	if c.customKey || c.maxWait != 0 {
		panic("ratelimit: NewLocal: WithKey and WithMaxWait do not apply")
	}
	r := rate.Every(q.Interval())
	burst := int(min(q.Limit, math.MaxInt32))
	// A bucket left alone for a whole window is full again (AllowN never
	// takes it below zero), so a key idle that long may be forgotten.
	idle := max(c.idle, q.Window)
	return &Local{q: q, now: time.Now, reg: keyed.New(c.maxKeys, idle, func(string) *rate.Limiter {
		return rate.NewLimiter(r, burst)
	})}
}

// Quota returns the local admitter's quota.
func (l *Local) Quota() Quota { return l.q }

// Admit takes one request's worth of key's quota, if there is any. It
// returns an error only for a zero Local.
func (l *Local) Admit(_ context.Context, key string) (Decision, error) {
	if l.reg == nil {
		return Decision{}, errZeroLocal
	}
	return l.admitAt(l.now(), key), nil
}

// AdmitAt is Admit at the time now, for a caller that keeps its own clock,
// such as a shared limiter deciding locally while its store is down. Calls
// should pass times that do not go backwards. It returns an error only for
// a zero Local.
func (l *Local) AdmitAt(now time.Time, key string) (Decision, error) {
	if l.reg == nil {
		return Decision{}, errZeroLocal
	}
	return l.admitAt(now, key), nil
}

func (l *Local) admitAt(now time.Time, key string) Decision {
	e := l.reg.Acquire(key)
	defer l.reg.Release(e)
	lim := e.Value
	d := Decision{Quota: l.q, Allowed: lim.AllowN(now, 1)}
	tokens := lim.TokensAt(now)
	interval := l.q.Interval()
	d.Remaining = max(int64(math.Floor(tokens)), 0)
	d.Reset = durationOf(float64(lim.Burst())-tokens, interval)
	if tokens < 1 {
		d.RetryAfter = max(durationOf(1-tokens, interval), time.Nanosecond)
	}
	return d
}

// durationOf returns how long n tokens take to come back, one per interval.
func durationOf(n float64, interval time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	f := math.Ceil(n * float64(interval))
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}

// Len returns the number of keys the admitter holds a bucket for.
func (l *Local) Len() int {
	if l.reg == nil {
		return 0
	}
	return l.reg.Len()
}

// Enforce returns a [resilience.Policy] that admits each call through a,
// under the key that key returns from the call's context; a nil key uses
// the call's target (resilience.Call.Target, the client's address in the
// gRPC server interceptors). It is how a server's gRPC interceptors share
// the admitters of [Middleware]:
//
//	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(
//		resiliencegrpc.UnaryServerInterceptor(ratelimit.Enforce(redisLimiter, tenant))))
//
// A call turned away fails with a [*LimitedError] (ErrLimited, marked as
// throttled with the wait before the key's next request, which the gRPC
// interceptors send as pushback); a call the admitter cannot decide fails
// with its error, which matches [ErrUnavailable]. Only [WithName],
// [WithMeterProvider] and [WithTracerProvider] apply; decisions are counted
// as [Middleware] counts them.
func Enforce(a Admitter, key func(ctx context.Context) string, opts ...Option) resilience.Policy {
	if a == nil {
		panic("ratelimit: Enforce: admitter is nil")
	}
	if key == nil {
		key = targetKey
	}
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	if c.keyedOnly != "" || c.maxWait != 0 || c.serverOnly != "" {
		panic("ratelimit: Enforce: only WithName, WithMeterProvider and WithTracerProvider apply")
	}
	return &enforcer{a: a, key: key, tel: newServerTelemetry(&c)}
}

type enforcer struct {
	a   Admitter
	key func(context.Context) string
	tel *serverTelemetry
}

func (e *enforcer) Do(ctx context.Context, op func(context.Context) error) error {
	d, err := e.a.Admit(ctx, e.key(ctx))
	if err != nil {
		e.tel.unavailable(ctx, err)
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return resilience.Mark(err, resilience.KindRejected)
	}
	e.tel.decided(ctx, d)
	if !d.Allowed {
		return resilience.MarkRetryAfter(&LimitedError{Wait: d.RetryAfter}, resilience.KindThrottled, d.RetryAfter)
	}
	return op(ctx)
}
