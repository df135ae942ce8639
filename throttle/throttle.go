package throttle

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/keyed"
)

// ErrRejected is matched, with errors.Is, by the error of every call the
// throttle turns away: a [*RejectedError].
var ErrRejected = errors.New("throttle: rejected locally")

// RejectedError is the error of a call the throttle turned away without
// sending it. It matches [ErrRejected] with errors.Is. Do returns it marked
// as refused (resilience.KindRefused), as an open breaker's error is: a
// retry outside the throttle does not retry it (each retry would be one
// more request to a dependency that is refusing them), and a circuit
// breaker does not count it.
type RejectedError struct {
	Target      string  // the host (resilience.Call.Target) of the call, "" outside any call description
	Probability float64 // the probability of rejection the call drew against
}

// Error names the host and the probability of rejection.
func (e *RejectedError) Error() string {
	target := e.Target
	if target == "" {
		target = "(no target)"
	}
	return fmt.Sprintf("throttle: rejected locally: %s accepts too few requests (rejecting %.0f%% of calls)", target, e.Probability*100)
}

// Is reports whether target is ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// buckets is the number of parts the window is counted in: it slides by a
// twentieth of its length.
const buckets = 20

// Throttle is a [resilience.Policy] that turns calls away locally when its
// dependency has been refusing them: the adaptive client-side throttling of
// Google's SRE book (chapter 21, "Handling Overload"). Over a sliding
// window it counts requests (every call, including those it turned away)
// and accepts (calls the dependency answered), and turns each call away
// with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// capped by [WithMaxProbability]. Build it with [New]; it is safe for concurrent use. The zero Throttle is
// not usable. Most callers want one throttle per host: [Keyed].
type Throttle struct {
	k     float64
	maxP  float64
	width int64 // of a bucket, in nanoseconds
	tel   *telemetryState
	set   attribute.Set // of the probability gauge

	random func() float64 // in [0, 1); a test replaces it

	mu                 sync.Mutex // guards what follows
	requests, accepts  [buckets]int64
	last               int64 // index (time / width) of the newest bucket
	totalReq, totalAcc int64
}

// New returns a throttle for one dependency. It panics if an option's value
// is invalid.
func New(opts ...Option) *Throttle {
	c := build("New", false, opts)
	tel := newTelemetry(&c)
	t := newThrottle(&c, tel, "")
	observeProbability(tel, t, (*Throttle).observe)
	return t
}

func newThrottle(c *config, tel *telemetryState, target string) *Throttle {
	t := &Throttle{k: c.k, maxP: c.maxP, width: int64(c.window) / buckets, tel: tel, random: rand.Float64}
	t.last = time.Now().UnixNano() / t.width
	if tel.Metrics() {
		t.set = probabilitySet(tel, target)
	}
	return t
}

// Probability returns the probability with which the throttle turns the
// next call away.
func (t *Throttle) Probability() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advanceLocked(time.Now())
	return t.probabilityLocked()
}

// Do runs op, or turns the call away with a [*RejectedError] with the
// throttle's current probability. A call counts as a request when it is
// turned away or its outcome is known, and as an accept when the dependency
// answered it: a success, or a rejection of the call itself (an HTTP 4xx,
// resilience.KindRejected). Throttling (HTTP 429, gRPC RESOURCE_EXHAUSTED),
// transient failures (a 503, a timeout, a connection refused) and permanent
// ones are requests not accepted. The caller's cancellation (or its own
// deadline) and a local
// refusal from a policy inside the throttle (an open breaker) are not
// counted at all: the dependency was not asked. If op panics, nothing is
// counted and the panic goes on.
func (t *Throttle) Do(ctx context.Context, op func(context.Context) error) error {
	if p := t.admit(); p > 0 {
		return t.reject(ctx, p)
	}
	err := op(ctx)
	var accepted bool
	switch resilience.Classify(err) {
	case resilience.KindSuccess, resilience.KindRejected:
		accepted = true
	case resilience.KindCanceled, resilience.KindRefused:
		return err
	}
	if err != nil && ctx.Err() != nil {
		return err // the caller gave up: the dependency's answer is unknown
	}
	t.count(accepted)
	return err
}

// admit draws against the current probability; it returns the probability
// if the call is turned away (after counting it as a request), 0 if not.
func (t *Throttle) admit() float64 {
	t.mu.Lock()
	t.advanceLocked(time.Now())
	p := t.probabilityLocked()
	if p == 0 || t.random() >= p {
		t.mu.Unlock()
		return 0
	}
	t.requests[t.last%buckets]++
	t.totalReq++
	t.mu.Unlock()
	return p
}

// count records the outcome of a call that was let through.
func (t *Throttle) count(accepted bool) {
	t.mu.Lock()
	t.advanceLocked(time.Now())
	i := t.last % buckets
	t.requests[i]++
	t.totalReq++
	if accepted {
		t.accepts[i]++
		t.totalAcc++
	}
	t.mu.Unlock()
}

// advanceLocked slides the window to now, dropping the buckets that left it.
func (t *Throttle) advanceLocked(now time.Time) {
	idx := now.UnixNano() / t.width
	if idx <= t.last {
		return
	}
	if idx-t.last >= buckets {
		t.requests, t.accepts = [buckets]int64{}, [buckets]int64{}
		t.totalReq, t.totalAcc = 0, 0
	} else {
		for j := t.last + 1; j <= idx; j++ {
			i := j % buckets
			t.totalReq -= t.requests[i]
			t.totalAcc -= t.accepts[i]
			t.requests[i], t.accepts[i] = 0, 0
		}
	}
	t.last = idx
}

func (t *Throttle) probabilityLocked() float64 {
	req, acc := float64(t.totalReq), float64(t.totalAcc)
	return min(max(0, (req-t.k*acc)/(req+1)), t.maxP)
}

// reject returns the error of a call turned away with probability p, and
// reports it.
func (t *Throttle) reject(ctx context.Context, p float64) error {
	t.tel.rejected(ctx, p)
	c, _ := resilience.CallFrom(ctx)
	return resilience.Mark(&RejectedError{Target: c.Target, Probability: p}, resilience.KindRefused)
}

// Keyed is a [resilience.Policy] that keeps one [Throttle] per key, by
// default per target host, so that a dependency that refuses calls is
// spared without throttling the calls to the others. Build it with
// [NewKeyed]; it is safe for concurrent use. The zero Keyed is not usable.
//
// Its throttles live in a bounded registry: at most [WithMaxKeys] idle
// keys, and a key with no call in flight for [WithIdleTimeout] is
// forgotten, with its counts.
type Keyed struct {
	key    func(context.Context) string
	reg    *keyed.Registry[*Throttle]
	summed bool
	set    attribute.Set
}

// NewKeyed returns a keyed throttle: one [Throttle], with the given options,
// per key. It panics if an option's value is invalid.
func NewKeyed(opts ...Option) *Keyed {
	c := build("NewKeyed", true, opts)
	tel := newTelemetry(&c)
	k := &Keyed{key: c.key, summed: c.customKey || c.tel.NoServerAddress}
	if k.summed {
		k.set = probabilitySet(tel, "")
		k.reg = keyed.New(c.maxKeys, c.idle, func(string) *Throttle { return newThrottle(&c, tel, "") })
	} else {
		k.reg = keyed.New(c.maxKeys, c.idle, func(key string) *Throttle { return newThrottle(&c, tel, key) })
	}
	observeProbability(tel, k, (*Keyed).observe)
	return k
}

// Do runs op under the throttle of the call's key; see [Throttle.Do].
func (k *Keyed) Do(ctx context.Context, op func(context.Context) error) error {
	return k.reg.Do(ctx, k.key(ctx), op, (*Throttle).Do)
}

// Probability returns the rejection probability of key's throttle, and
// false if the key has none (never seen, or forgotten).
func (k *Keyed) Probability(key string) (float64, bool) {
	t, ok := k.reg.Peek(key)
	if !ok {
		return 0, false
	}
	return t.Probability(), true
}

// Len returns the number of keys that have a throttle.
func (k *Keyed) Len() int { return k.reg.Len() }
