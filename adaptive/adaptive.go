package adaptive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/keyed"
)

// ErrLimited is matched, with errors.Is, by the error of every call the
// limiter turns away: a [*LimitError].
var ErrLimited = errors.New("adaptive: concurrency limit reached")

// Reasons a call is turned away, the values of [LimitError].Reason and of
// the resilience.reason attribute of the limiter's telemetry.
const (
	ReasonLimit        = "limit"         // the limit was reached and the limiter has no queue
	ReasonQueueFull    = "queue_full"    // the limit was reached and the queue was full
	ReasonQueueTimeout = "queue_timeout" // no slot came free within the queue's maximum wait
	ReasonSpeculative  = "speculative"   // a speculative call (WithSpeculative) found the limit reached or the dependency queueing
)

// LimitError is the error of a call the limiter turned away. It matches
// [ErrLimited] with errors.Is. Do returns it marked as throttled
// (resilience.KindThrottled), without a requested delay, as a full bulkhead
// is: a retry outside the limiter waits its own backoff, and a circuit
// breaker outside it does not count it.
type LimitError struct {
	Target string // the host (resilience.Call.Target) of the call, "" outside any call description
	Limit  int    // the limit when the call was turned away
	Reason string // ReasonLimit, ReasonQueueFull, ReasonQueueTimeout or ReasonSpeculative
}

// Error names the host, the limit and the reason.
func (e *LimitError) Error() string {
	target := e.Target
	if target == "" {
		target = "(no target)"
	}
	return fmt.Sprintf("adaptive: concurrency limit reached for %s (limit %d, %s)", target, e.Limit, e.Reason)
}

// Is reports whether target is ErrLimited.
func (e *LimitError) Is(target error) bool { return target == ErrLimited }

// pauseGap is the longest a limiter with calls in flight may go without
// any call starting or ending before it takes the silence for a pause of
// its own process (a stopped or starved process, a VM migration): the
// calls that span it are not timed. A limiter busy enough to reach its
// limit sees calls start and end every few milliseconds; one that sees none
// for a second was not running, or has spare room and so nothing to learn.
const pauseGap = time.Second

// busyGap is the longest time between two call starts of a busy limiter.
// One that then sees no event for pauseGap with no call in flight may have
// been paused, or its callers may have gone quiet: if a backlog follows (a
// call finds the limit reached within backlogSpan of the silence's end),
// it was a pause, and the backlog is let in as after any pause.
const busyGap = pauseGap / 20

// backlogSpan is how soon after a busy limiter's silence a call must find
// the limit reached for the silence to count as a pause.
const backlogSpan = window

// maxCatchUp bounds how long the limiter lets every call in after a pause
// of its process.
const maxCatchUp = 10 * time.Second

// Limiter is a [resilience.Policy] that bounds how many calls run at once
// to one dependency, with a limit that follows the dependency's latency:
// it shrinks when the dependency queues and grows back when it no longer
// does (see the package documentation). Build it with [New]; it is safe
// for concurrent use. The zero Limiter is not usable. Most callers want
// one limit per host: [Keyed].
type Limiter struct {
	target  string
	release func(error) // l.releaseSlot, made once so that Defer costs no closure
	tel     *telemetryState

	queueSize   int
	maxWait     time.Duration
	speculative func(context.Context) bool // nil: no call is speculative

	limit atomic.Int64  // est.current(), for the gauge and Limit
	set   attribute.Set // of the limit gauge

	mu        sync.Mutex // guards what follows; never held while calling out
	est       estimator
	inFlight  int
	lastEvent time.Time     // when a call last started or ended
	lastStart time.Time     // when a call last started
	startGap  time.Duration // between the last two starts
	quietEnd  time.Time     // when a busy limiter's silence ended: maybe a pause (see busyGap)
	quiet     time.Duration // how long that silence lasted
	epoch     uint64        // pauses seen: a call that spans one is not timed
	catchUp   time.Time     // after a pause, until when calls are let in without a limit
	probing   bool          // running a probe window at the minimum limit
	probeN    int           // samples of the probe so far
	probeMin  time.Duration
	waiters   []*waiter // FIFO; granted waiters are removed
}

// waiter is a call queued for a slot.
type waiter struct {
	ready   chan struct{} // closed when granted
	granted bool          // guarded by the limiter's mu
}

// ticket is what a call admitted by the limiter carries until it ends.
type ticket struct {
	start time.Time
	epoch uint64
	probe bool // admitted during a probe, at the minimum limit
}

// New returns a limiter for one dependency. It panics if an option's value
// is invalid.
func New(opts ...Option) *Limiter {
	c := build("New", false, opts)
	tel := newTelemetry(&c)
	l := newLimiter(&c, tel, "")
	observeLimit(tel, l, (*Limiter).observe)
	return l
}

func newLimiter(c *config, tel *telemetryState, target string) *Limiter {
	now := time.Now()
	l := &Limiter{target: target, tel: tel, queueSize: c.queueSize, maxWait: c.maxWait, speculative: c.speculative, lastEvent: now, startGap: pauseGap}
	l.est = newEstimator(c.min, c.max, c.initial, now)
	l.limit.Store(int64(l.est.current()))
	l.release = l.releaseSlot
	if tel.Metrics() {
		l.tel.setFor(l, target)
	}
	return l
}

// Limit returns the current limit: how many calls may run at once.
func (l *Limiter) Limit() int { return int(l.limit.Load()) }

// InFlight returns the number of calls holding a slot.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Do takes a slot and runs op, or turns the call away with a
// [*LimitError] when the limit is reached (after waiting in the queue, if
// the limiter has one: [WithQueue]). The slot is given back when op's
// result is done: when op returns, or, for a result held past op (see
// resilience.Hold), when the response body is closed or the stream ends.
// If ctx is done while the call waits in the queue, Do returns ctx.Err().
//
// The time from op's start to its return (an HTTP response's headers) is a
// latency sample, if op succeeded, was answered with a rejection (an HTTP
// 4xx), or ran out of time (an error matching context.DeadlineExceeded,
// timed as at least that long). A call the caller cancelled, a failure
// (the dependency's errors say nothing of its queue), and a call that
// spans a pause of the client's own process are not samples. If op panics,
// the slot is given back and the panic goes on.
func (l *Limiter) Do(ctx context.Context, op func(context.Context) error) error {
	t, err := l.acquire(ctx)
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if !returned {
			l.releaseSlot(nil)
		}
	}()
	err = op(ctx)
	returned = true
	if resilience.Held(ctx) {
		l.end(ctx, t, err, false)
		resilience.Defer(ctx, l.release)
	} else {
		l.end(ctx, t, err, true)
	}
	return err
}

// acquire admits the call or turns it away. Telemetry for rejections
// belongs here.
func (l *Limiter) acquire(ctx context.Context) (ticket, error) {
	spec := l.speculative != nil && l.speculative(ctx) // user code: not under mu
	now := time.Now()
	l.mu.Lock()
	l.notePauseLocked(now)
	l.startGap, l.lastStart = now.Sub(l.lastStart), now
	if l.catchUp.IsZero() && !l.quietEnd.IsZero() && l.inFlight >= l.effectiveLimitLocked() {
		if now.Sub(l.quietEnd) <= backlogSpan {
			// A backlog after a busy limiter's silence: the silence was
			// a pause of the process, with nothing in flight across it.
			l.epoch++
			l.est.restart(now)
			l.catchUp = l.quietEnd.Add(min(l.quiet, maxCatchUp))
		}
		l.quietEnd = time.Time{}
	}
	if !l.catchUp.IsZero() {
		// The calls that fell due while the process was paused arrive
		// at once: the limiter knows nothing that should turn them away.
		t := l.admitLocked(now, math.MaxInt)
		l.mu.Unlock()
		return t, nil
	}
	limit := l.effectiveLimitLocked()
	if spec {
		// Extra work for one call: only while the dependency keeps up.
		if l.inFlight < limit && len(l.waiters) == 0 && l.est.clear() {
			t := l.admitLocked(now, limit)
			l.mu.Unlock()
			return t, nil
		}
		l.mu.Unlock()
		return ticket{}, l.reject(ctx, limit, ReasonSpeculative)
	}
	if l.inFlight >= limit && len(l.waiters) == 0 && !l.probing && l.est.grow() {
		limit = l.est.current()
		l.limit.Store(int64(limit))
	}
	if l.inFlight < limit && len(l.waiters) == 0 {
		t := l.admitLocked(now, limit)
		l.mu.Unlock()
		return t, nil
	}
	l.est.saturate()
	if l.maxWait == 0 || len(l.waiters) >= l.queueSize {
		l.mu.Unlock()
		reason := ReasonLimit
		if l.maxWait > 0 {
			reason = ReasonQueueFull
		}
		return ticket{}, l.reject(ctx, limit, reason)
	}
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return ticket{}, err
	}
	w := &waiter{ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	began := now
	timer := time.NewTimer(l.maxWait)
	defer timer.Stop()
	var cause error
	select {
	case <-w.ready:
	case <-timer.C:
	case <-ctx.Done():
		cause = ctx.Err()
	}
	now = time.Now()
	l.mu.Lock()
	if w.granted {
		// Granted, perhaps as the wait ended: the slot is the call's.
		t := ticket{start: now, epoch: l.epoch, probe: l.probing}
		l.mu.Unlock()
		l.tel.waited(ctx, now.Sub(began))
		return t, nil
	}
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			break
		}
	}
	limit = l.effectiveLimitLocked()
	l.mu.Unlock()
	if cause != nil {
		return ticket{}, cause
	}
	return ticket{}, l.reject(ctx, limit, ReasonQueueTimeout)
}

// admitLocked takes a slot for a call starting at now.
func (l *Limiter) admitLocked(now time.Time, limit int) ticket {
	l.inFlight++
	l.est.admitted(l.inFlight)
	if l.inFlight >= limit {
		l.est.saturate()
	}
	l.lastEvent = now
	return ticket{start: now, epoch: l.epoch, probe: l.probing}
}

// effectiveLimitLocked is the limit calls are admitted against: the
// estimator's, or its minimum during a probe.
func (l *Limiter) effectiveLimitLocked() int {
	if l.probing {
		return int(l.est.min)
	}
	return l.est.current()
}

// notePauseLocked starts a new epoch when the limiter, with calls in
// flight, saw no call start or end for pauseGap: a pause of the process
// (with none in flight, see busyGap).
// The calls in flight across it are not timed. For as long again as the
// pause lasted (at most maxCatchUp) the limiter catches up: it lets every
// call in, since the calls that fell due during the pause arrive at once
// and the pause says nothing of the dependency, and times none of them (the
// epoch moves on again when the catch-up ends).
func (l *Limiter) notePauseLocked(now time.Time) {
	gap := now.Sub(l.lastEvent)
	if gap > pauseGap && l.inFlight == 0 && l.startGap <= busyGap {
		l.quietEnd, l.quiet = now, gap // a pause if a backlog follows
	}
	if gap > pauseGap && l.inFlight > 0 {
		l.epoch++
		l.est.restart(now)
		l.catchUp = now.Add(min(gap, maxCatchUp))
	} else if !l.catchUp.IsZero() && !now.Before(l.catchUp) {
		l.epoch++
		l.est.restart(now)
		l.catchUp = time.Time{}
	}
	l.lastEvent = now
}

// end times the call that held t, which returned err, and gives its slot
// back if release: one lock and one reading of the clock for the common
// case of a result not held past op.
func (l *Limiter) end(ctx context.Context, t ticket, err error, release bool) {
	now := time.Now()
	timed := false
	if ctxErr := ctx.Err(); ctxErr == nil || errors.Is(ctxErr, context.DeadlineExceeded) {
		// A call the caller cancelled says nothing of the dependency.
		switch resilience.Classify(err) {
		case resilience.KindSuccess, resilience.KindRejected:
			timed = true
		default:
			timed = errors.Is(err, context.DeadlineExceeded)
		}
	}
	l.mu.Lock()
	l.notePauseLocked(now)
	if timed && t.epoch == l.epoch && l.catchUp.IsZero() {
		l.sampleLocked(t, now.Sub(t.start), now)
	}
	if release {
		l.inFlight--
	}
	l.grantLocked()
	l.mu.Unlock()
}

// sampleLocked adds the latency d of the call that held t, ended at now.
func (l *Limiter) sampleLocked(t ticket, d time.Duration, now time.Time) {
	if l.probing {
		if !t.probe {
			return
		}
		if l.probeN == 0 || d < l.probeMin {
			l.probeMin = d
		}
		l.probeN++
		if l.probeN >= minSamples {
			l.est.probed(l.probeMin)
			l.probing = false
			l.limit.Store(int64(l.est.current()))
			l.est.restart(now)
		}
		return
	}
	if l.est.sample(d, now) {
		l.limit.Store(int64(l.est.current()))
		if l.est.probe(now) {
			l.probing, l.probeN = true, 0
			l.limit.Store(int64(l.est.min))
		}
	}
}

// releaseSlot gives a slot back, to the first queued call if there is one
// and the limit allows it. It does not read the clock: the call's end was
// noted when op returned.
func (l *Limiter) releaseSlot(error) {
	l.mu.Lock()
	l.inFlight--
	l.grantLocked()
	l.mu.Unlock()
}

// grantLocked hands free slots to queued calls, first come first served.
func (l *Limiter) grantLocked() {
	limit := l.effectiveLimitLocked()
	n := 0
	for n < len(l.waiters) && l.inFlight < limit {
		w := l.waiters[n]
		w.granted = true
		close(w.ready)
		l.inFlight++
		l.est.admitted(l.inFlight)
		n++
	}
	if n > 0 {
		if l.inFlight >= limit {
			l.est.saturate()
		}
		l.waiters = append(l.waiters[:0], l.waiters[n:]...)
	}
}

// reject returns the error of a call turned away, and reports it.
func (l *Limiter) reject(ctx context.Context, limit int, reason string) error {
	l.tel.rejected(ctx, limit, reason)
	c, _ := resilience.CallFrom(ctx)
	return resilience.Mark(&LimitError{Target: c.Target, Limit: limit, Reason: reason}, resilience.KindThrottled)
}

// Keyed is a [resilience.Policy] that keeps one [Limiter] per key, by
// default per target host, so that each dependency gets the limit its own
// latency calls for. Build it with [NewKeyed]; it is safe for concurrent
// use. The zero Keyed is not usable.
//
// Its limiters live in a bounded registry: at most [WithMaxKeys] idle keys,
// and a key with no call in flight for [WithIdleTimeout] is forgotten
// (with what its limiter learnt: a host seen again starts from the initial
// limit). A key with a call in flight is never forgotten.
type Keyed struct {
	key    func(context.Context) string
	reg    *keyed.Registry[*Limiter]
	summed bool          // report the sum over keys, not one series per key
	set    attribute.Set // for summed: the set of the sum
}

// NewKeyed returns a keyed limiter: one [Limiter], with the given options,
// per key. It panics if an option's value is invalid.
func NewKeyed(opts ...Option) *Keyed {
	c := build("NewKeyed", true, opts)
	tel := newTelemetry(&c)
	k := &Keyed{key: c.key, summed: c.customKey || c.tel.NoServerAddress}
	if k.summed {
		k.set = limitSet(tel, "")
		k.reg = keyed.New(c.maxKeys, c.idle, func(string) *Limiter { return newLimiter(&c, tel, "") })
	} else {
		k.reg = keyed.New(c.maxKeys, c.idle, func(key string) *Limiter { return newLimiter(&c, tel, key) })
	}
	observeLimit(tel, k, (*Keyed).observe)
	return k
}

// Do runs op under the limiter of the call's key; see [Limiter.Do].
func (k *Keyed) Do(ctx context.Context, op func(context.Context) error) error {
	return k.reg.Do(ctx, k.key(ctx), op, (*Limiter).Do)
}

// Limit returns the current limit of key's limiter, and false if the key
// has none (never seen, or forgotten).
func (k *Keyed) Limit(key string) (int, bool) {
	l, ok := k.reg.Peek(key)
	if !ok {
		return 0, false
	}
	return l.Limit(), true
}

// Len returns the number of keys that have a limiter.
func (k *Keyed) Len() int { return k.reg.Len() }
