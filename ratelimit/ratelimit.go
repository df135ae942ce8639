package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/keyed"
)

// ErrLimited is matched, with errors.Is, by every error a limiter returns
// when it turns a call away. The error is a [*LimitedError].
var ErrLimited = errors.New("ratelimit: rate limit exceeded")

// LimitedError is the error of a call turned away by a limiter. It matches
// [ErrLimited]. The error returned by Do also carries Wait for
// resilience.RetryAfter, so that a retry policy outside the limiter waits
// for the call's turn.
type LimitedError struct {
	// Wait is how long the call would have had to wait for its turn, as
	// seen when it was turned away.
	Wait time.Duration
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("ratelimit: rate limit exceeded, next call allowed in %v", round(e.Wait))
}

// round rounds d for people to read: to the millisecond, or to the
// microsecond below one millisecond.
func round(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// Is reports whether target is ErrLimited.
func (e *LimitedError) Is(target error) bool { return target == ErrLimited }

// Limiter is a client-side rate limit: a [resilience.Policy] that lets calls
// through at a steady rate with bursts, a token bucket from
// golang.org/x/time/rate. Build it with [New]; it is safe for concurrent
// use. The zero Limiter is not usable.
type Limiter struct {
	lim     *rate.Limiter
	maxWait time.Duration
	tel     *telemetryState // shared by the limiters of a Keyed
}

// New returns a limiter that allows r calls per second on average, and up
// to burst calls at once. rate.Every converts an interval between calls to
// a rate. New panics if r is not positive, if burst < 1 (unless r is
// rate.Inf), or if an option's value is invalid.
func New(r rate.Limit, burst int, opts ...Option) *Limiter {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("ratelimit: New: option %d is nil", i))
		}
		o.apply(&c)
	}
	c.validate("New", r, burst, false)
	return &Limiter{lim: rate.NewLimiter(r, burst), maxWait: c.maxWait, tel: newTelemetry(&c)}
}

// Limit returns the limiter's rate, in calls per second.
func (l *Limiter) Limit() rate.Limit { return l.lim.Limit() }

// Burst returns the limiter's burst.
func (l *Limiter) Burst() int { return l.lim.Burst() }

// Do runs op when the rate allows it. A call that would have to wait longer
// than the maximum wait ([WithMaxWait]), or past ctx's deadline, fails at
// once with a [*LimitedError], marked as throttled with the wait it would
// have needed (resilience.MarkRetryAfter); it does not use up the rate. If
// ctx is done during the wait, Do returns ctx.Err() and gives the call's
// turn back.
func (l *Limiter) Do(ctx context.Context, op func(context.Context) error) error {
	if err := l.wait(ctx); err != nil {
		return err
	}
	return op(ctx)
}

// wait waits for the call's turn. Telemetry for rejections belongs here.
func (l *Limiter) wait(ctx context.Context) error {
	now := time.Now()
	if l.lim.AllowN(now, 1) {
		return nil
	}
	if l.maxWait == 0 {
		return l.limited(ctx, l.needed(now))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := l.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if dl, ok := ctx.Deadline(); d > l.maxWait || ok && now.Add(d).After(dl) {
		r.CancelAt(now)
		return l.limited(ctx, d)
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
		l.tel.waits.Record(ctx, d)
		return nil
	case <-ctx.Done():
		t.Stop()
		r.Cancel()
		return ctx.Err()
	}
}

// needed returns how long until one token is available, from now.
func (l *Limiter) needed(now time.Time) time.Duration {
	missing := 1 - l.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	secs := missing / float64(l.lim.Limit())
	if secs >= math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}

func (l *Limiter) limited(ctx context.Context, wait time.Duration) error {
	l.rejected(ctx, wait)
	return resilience.MarkRetryAfter(&LimitedError{Wait: wait}, resilience.KindThrottled, wait)
}

// Keyed is a [resilience.Policy] that keeps one [Limiter] per key, by
// default per target host, so that each dependency gets its own rate.
// Build it with [NewKeyed]; it is safe for concurrent use. The zero Keyed
// is not usable.
//
// Its limiters live in a bounded registry: at most [WithMaxKeys] keys (plus
// those with calls waiting), and a key idle for [WithIdleTimeout], or for
// the time its bucket takes to fill (burst / rate) if that is longer, is
// forgotten: by then its bucket is full again, and forgetting it changes
// nothing. Past WithMaxKeys keys, the least recently used are forgotten
// whatever is left in their buckets.
type Keyed struct {
	key func(context.Context) string
	reg *keyed.Registry[*Limiter]
}

// NewKeyed returns a keyed limiter; each key gets r calls per second and a
// burst of burst, as with [New]. It panics like New.
func NewKeyed(r rate.Limit, burst int, opts ...Option) *Keyed {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("ratelimit: NewKeyed: option %d is nil", i))
		}
		o.apply(&c)
	}
	c.validate("NewKeyed", r, burst, true)
	tel := newTelemetry(&c)
	return &Keyed{
		key: c.key,
		reg: keyed.New(c.maxKeys, max(c.idle, fillTime(r, burst)), func(string) *Limiter {
			return &Limiter{lim: rate.NewLimiter(r, burst), maxWait: c.maxWait, tel: tel}
		}),
	}
}

// fillTime returns how long an empty bucket of burst tokens takes to fill
// at r: after that long unused, a key's limiter is as good as a new one.
func fillTime(r rate.Limit, burst int) time.Duration {
	if r == rate.Inf {
		return 0
	}
	secs := float64(burst) / float64(r)
	if secs >= math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}

// Do runs op when the rate of the call's key allows it; see [Limiter.Do].
func (k *Keyed) Do(ctx context.Context, op func(context.Context) error) error {
	e := k.reg.Acquire(k.key(ctx))
	err := e.Value.wait(ctx)
	k.reg.Release(e)
	if err != nil {
		return err
	}
	return op(ctx)
}

// Len returns the number of keys that have a limiter.
func (k *Keyed) Len() int { return k.reg.Len() }
