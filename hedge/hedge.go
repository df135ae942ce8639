package hedge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Reasons an [*Error] gives for stopping.
var (
	// ErrExhausted: every attempt the policy may make failed.
	ErrExhausted = errors.New("hedge: attempts exhausted")
	// ErrBudget: the retry budget ([WithBudget]) had too few tokens left
	// for another attempt. It is budget.ErrExhausted, which the retry
	// policy reports too.
	ErrBudget = budget.ErrExhausted
)

// errLost is the cause with which a losing attempt's context is cancelled.
var errLost = errors.New("hedge: another attempt won")

// errAbandoned is the cause with which the attempts still running are
// cancelled when the first attempt panicked.
var errAbandoned = errors.New("hedge: the first attempt panicked")

// Error reports that a [Policy] stopped after attempts that all failed in a
// way worth another attempt. errors.Is and errors.As see both the reason
// and the last failed attempt's error.
type Error struct {
	// Attempts is the number of attempts made.
	Attempts int
	// Reason is why no further attempt was made: ErrExhausted or
	// ErrBudget.
	Reason error
	// Err is the error of the last attempt to fail.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("hedge: gave up after %d attempt(s) (%v): %v", e.Attempts, e.Reason, e.Err)
}

// Unwrap returns the last attempt's error and the reason, in that order, so
// that the outcome of the last attempt is what resilience.Classify reads.
func (e *Error) Unwrap() []error { return []error{e.Err, e.Reason} }

// Policy is a [resilience.Policy] that sends extra attempts of a slow or
// failed call beside the first, and returns the first acceptable result.
// Build it with [New]; it is safe for concurrent use. The zero Policy is
// not usable.
type Policy struct {
	c        config
	tel      *telemetry.Policy
	attempts telemetry.AttemptRecorder
	lat      *window // nil: fixed delay
}

// New returns a hedging policy configured by opts. It panics, naming the
// option, if an option's value is invalid.
func New(opts ...Option) *Policy {
	c := config{delay: DefaultDelay, maxHedges: DefaultMaxHedges}
	for _, o := range opts {
		o.apply(&c)
	}
	c.validate()
	tel := telemetry.New(telemetry.KindHedge, c.tel)
	p := &Policy{c: c, tel: tel, attempts: tel.Attempts()}
	if c.adaptive {
		p.lat = newWindow(c.quantile, c.window)
	}
	return p
}

// Do runs op, and after the policy's delay, or at once when an attempt
// fails in a way worth another attempt, runs it again beside the attempts
// still running, up to the maximum number of hedges. The first attempt to
// succeed, or to fail in a way no other attempt would fix, wins: the others
// are cancelled, Do waits for them to return and discards their results,
// and returns the winner's error. See the package documentation for the
// rules.
//
// The first attempt runs on the calling goroutine, hedges on goroutines of
// their own. An op that panics is not recovered. In the first attempt (or
// if it calls runtime.Goexit) the panic unwinds through Do once no attempt
// can start any more: the hedge timer is stopped, the hedges already
// running are cancelled, Do waits for them to return and discards every
// attempt's result, so that nothing of the call runs after Do. In a hedge
// a panic ends the program, as any goroutine's panic does.
func (p *Policy) Do(ctx context.Context, op func(context.Context) error) error {
	call, inCall := resilience.CallFrom(ctx)
	if inCall && (!call.Idempotent || call.NoRetry != nil) {
		return op(ctx)
	}
	// The call's budget (its host's, with budget.NewKeyed), looked up
	// once, outside any lock.
	r := &run{p: p, ctx: ctx, op: op, parallel: !call.Sequential, budget: p.c.budget.For(ctx)}
	a := &r.first
	r.begin(a, 1)
	r.running = 1
	if r.parallel {
		r.mu.Lock()
		r.timer = time.AfterFunc(p.delay(), r.fire)
		r.mu.Unlock()
	}
	unwound := true
	defer func() {
		if unwound {
			r.abandon()
		}
	}()
	r.exec(a)
	unwound = false
	return r.wait()
}

// MaxHedges returns how many attempts the policy may send beside the first
// ([WithMaxHedges]).
func (p *Policy) MaxHedges() int { return p.c.maxHedges }

func (p *Policy) delay() time.Duration {
	if p.lat != nil {
		if d := p.lat.delay(); d > 0 {
			return d
		}
	}
	return p.c.delay
}

// acceptable reports whether err ends the call: a success, or a failure
// that another attempt would not fix.
func acceptable(err error) bool { return !resilience.Classify(err).Retryable() }

// turnedAway reports whether err turned the attempt away instead of
// answering it: pushback (resilience.KindThrottled), or a refusal by a
// local policy, which is any kind that is neither the dependency's answer
// nor the caller's own doing.
func turnedAway(err error) bool {
	switch resilience.Classify(err) {
	case resilience.KindSuccess, resilience.KindTransient, resilience.KindPermanent,
		resilience.KindRejected, resilience.KindCanceled:
		return false
	}
	return true
}

// attempt is one attempt of a call.
type attempt struct {
	n      int
	ctx    context.Context
	at     resilience.Attempt
	cancel context.CancelCauseFunc
	began  time.Time // for the latency estimate
	clock  *telemetry.AttemptClock

	// Set when the operation returned, under run.mu.
	err  error
	done bool
}

// run is the state of one call across its attempts.
type run struct {
	p        *Policy
	ctx      context.Context // the caller's
	op       func(context.Context) error
	parallel bool // false: the call's attempts must not overlap
	budget   *budget.Budget
	first    attempt
	wg       sync.WaitGroup // the goroutines of the hedges

	mu      sync.Mutex // guards the fields below
	hedges  []*attempt
	running int
	winner  *attempt
	last    *attempt // the last attempt to fail
	refused bool     // the budget refused an attempt
	closed  bool     // no attempt runs or will start
	timer   *time.Timer
	done    chan struct{} // closed with closed, if made
	// notBefore is when the dependency's latest requested delay ends (a
	// Retry-After): no attempt starts before it. waiting reports that
	// the timer is armed for it, to start the next attempt then.
	notBefore time.Time
	waiting   bool
}

// maxPushbackWait caps how long the policy waits for a dependency's
// requested delay before its next attempt, as the retry policy's default
// maximum delay caps its own; minAttemptTime is the least time before the
// call's deadline worth an attempt, as the retry policy's default.
const (
	maxPushbackWait = 10 * time.Second
	minAttemptTime  = 10 * time.Millisecond
)

// begin prepares attempt n.
func (r *run) begin(a *attempt, n int) {
	ctx, cancel := context.WithCancelCause(r.ctx)
	if r.parallel {
		a.ctx, a.at = resilience.StartParallelAttempt(ctx, n)
	} else {
		a.ctx, a.at = resilience.StartAttempt(ctx, n)
	}
	a.n, a.cancel = n, cancel
	a.ctx, a.clock = r.p.attempts.Start(a.ctx)
	if r.p.lat != nil {
		a.began = time.Now()
	}
}

// exec runs attempt a and settles its outcome.
func (r *run) exec(a *attempt) {
	err := r.op(a.ctx)
	var d time.Duration
	if !a.began.IsZero() {
		d = time.Since(a.began)
	}
	r.mu.Lock()
	a.err, a.done = err, true
	r.running--
	var (
		next   *attempt
		losers []*attempt
	)
	switch {
	case r.winner != nil || r.closed:
		// a lost, and was cancelled.
	case err != nil && r.ctx.Err() != nil:
		// The caller gave up: the other attempts end with its context.
	case turnedAway(err):
		// Pushback or a local refusal (an open breaker, a full bulkhead,
		// a 429, a 409 for the call's key in flight) is not an answer:
		// the attempt drops out, and is not replaced at once. If the
		// dependency said when to come back and no other attempt runs,
		// the next one goes then.
		r.last = a
		if r.pushedBackLocked(err) && r.running == 0 {
			r.waitLocked()
		}
	case acceptable(err):
		r.winner = a
		if r.timer != nil {
			r.timer.Stop()
		}
		r.waiting = false
		losers = r.runningLocked()
	default:
		r.last = a
		if r.pushedBackLocked(err) || time.Now().Before(r.notBefore) {
			r.waitLocked() // the next attempt, when the delay ends
		} else {
			next = r.nextLocked()
		}
	}
	if r.running == 0 && next == nil && (!r.waiting || r.ctx.Err() != nil) {
		r.closeLocked()
	}
	r.mu.Unlock()

	for _, l := range losers {
		l.cancel(errLost)
		r.p.event(r.ctx, telemetry.EventHedgeCancelled, l.n, "")
	}
	if next != nil {
		r.p.event(r.ctx, telemetry.EventHedgeSent, next.n, "failure")
		r.start(next)
	}
	r.p.attempts.End(r.ctx, a.n, a.clock, err)
	if !a.began.IsZero() && a.n == 1 && r.ctx.Err() == nil {
		r.p.lat.add(d)
	}
}

// pushedBackLocked notes the delay the dependency asked for in err, if
// any, and reports whether the next attempt must wait for it.
func (r *run) pushedBackLocked(err error) bool {
	d, ok := resilience.RetryAfter(err)
	if !ok || !resilience.Classify(err).Retryable() {
		return false
	}
	if t := time.Now().Add(min(d, maxPushbackWait)); t.After(r.notBefore) {
		r.notBefore = t
	}
	return time.Now().Before(r.notBefore)
}

// waitLocked arms the timer to start the next attempt when the
// dependency's requested delay ends, if the call's deadline, the maximum
// number of hedges and the caller allow one then.
func (r *run) waitLocked() {
	if r.closed || r.winner != nil || r.ctx.Err() != nil || len(r.hedges) >= r.p.c.maxHedges {
		return
	}
	if dl, ok := r.ctx.Deadline(); ok && r.notBefore.After(dl.Add(-minAttemptTime)) {
		return
	}
	r.waiting = true
	d := time.Until(r.notBefore)
	if r.timer == nil {
		r.timer = time.AfterFunc(d, r.fire)
	} else {
		r.timer.Reset(d)
	}
}

// runningLocked returns the attempts still running.
func (r *run) runningLocked() []*attempt {
	var as []*attempt
	if !r.first.done {
		as = append(as, &r.first)
	}
	for _, h := range r.hedges {
		if !h.done {
			as = append(as, h)
		}
	}
	return as
}

// nextLocked prepares the next attempt, if the policy, the call and the
// budget allow one.
func (r *run) nextLocked() *attempt {
	if r.closed || r.winner != nil || r.ctx.Err() != nil || len(r.hedges) >= r.p.c.maxHedges {
		return nil
	}
	if !r.budget.TryWithdraw() {
		r.refused = true
		return nil
	}
	a := new(attempt)
	r.begin(a, len(r.hedges)+2)
	r.hedges = append(r.hedges, a)
	r.running++
	// Counted now, under r.mu, not when its goroutine starts: a call
	// that closes (abandon) waits for it even if start comes later.
	r.wg.Add(1)
	return a
}

// start runs a, prepared by nextLocked, on a goroutine of its own.
func (r *run) start(a *attempt) {
	go func() {
		defer r.wg.Done()
		r.exec(a)
	}()
}

// fire sends a hedge once the delay passed, and arms the timer for the
// next one.
func (r *run) fire() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if d := time.Until(r.notBefore); d > 0 {
		// The dependency asked for a delay: no hedge before it ends.
		r.timer.Reset(d)
		r.mu.Unlock()
		return
	}
	reason := "delay"
	if r.waiting {
		reason = "pushback"
	}
	r.waiting = false
	a := r.nextLocked()
	if a != nil && r.parallel && len(r.hedges) < r.p.c.maxHedges {
		r.timer.Reset(r.p.delay())
	}
	if a == nil && r.running == 0 {
		r.closeLocked() // the attempt that waited is not allowed after all
	}
	r.mu.Unlock()
	if a != nil {
		r.p.event(r.ctx, telemetry.EventHedgeSent, a.n, reason)
		r.start(a)
	}
}

func (r *run) closeLocked() {
	if r.closed {
		return // abandon closed it before the last hedge returned
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.done != nil {
		close(r.done)
	}
}

// wait waits until no attempt runs or will start, keeps the result it
// returns and discards the others.
func (r *run) wait() error {
	r.mu.Lock()
	if !r.closed {
		if r.done == nil {
			r.done = make(chan struct{})
		}
		ch := r.done
		r.mu.Unlock()
		select {
		case <-ch:
		case <-r.ctx.Done():
			// No attempt may run while the policy waits out a delay:
			// the caller's giving up ends the call.
			r.mu.Lock()
			if !r.closed && r.running == 0 {
				r.closeLocked()
			}
			r.mu.Unlock()
			<-ch
		}
	} else {
		r.mu.Unlock()
	}
	r.wg.Wait()
	// Every attempt returned: the fields are no longer shared.

	keep := r.winner
	if keep == nil && r.ctx.Err() == nil {
		keep = r.last
	}
	r.each(func(a *attempt) {
		if a != keep {
			a.at.Discard()
			a.cancel(errLost)
		}
	})
	if keep == nil {
		return r.ctx.Err()
	}
	// The kept attempt's context lives as long as its result: a response
	// body is read with it.
	resilience.Defer(keep.ctx, keep.cancel)
	keep.at.Keep()
	if keep == r.winner {
		if keep.err == nil {
			r.budget.Deposit()
			if keep.n > 1 {
				r.budget.Refund()
			}
		}
		if keep.n > 1 {
			r.p.event(r.ctx, telemetry.EventHedgeWon, keep.n, "")
		}
		return keep.err
	}
	if turnedAway(keep.err) && len(r.hedges) < r.p.c.maxHedges {
		// Turned away, and not replaced: returned as it is, so that an
		// open breaker fails fast.
		return keep.err
	}
	e := &Error{Attempts: 1 + len(r.hedges), Reason: ErrExhausted, Err: keep.err}
	if r.refused && len(r.hedges) < r.p.c.maxHedges {
		e.Reason = ErrBudget
		r.p.event(r.ctx, telemetry.EventBudgetExhausted, e.Attempts, "budget")
	}
	return e
}

// abandon ends the call when its first attempt unwound Do (a panic, or
// runtime.Goexit) instead of returning: no attempt starts any more, those
// running are cancelled and waited for, and every attempt is discarded.
func (r *run) abandon() {
	r.mu.Lock()
	r.closeLocked()
	running := r.runningLocked()
	r.mu.Unlock()
	for _, a := range running {
		a.cancel(errAbandoned)
	}
	r.wg.Wait()
	r.each(func(a *attempt) {
		a.at.Discard()
		a.cancel(errAbandoned)
	})
}

func (r *run) each(f func(*attempt)) {
	f(&r.first)
	for _, h := range r.hedges {
		f(h)
	}
}

// event counts ev and adds its span event, for attempt n, with a reason
// if not empty.
func (p *Policy) event(ctx context.Context, ev string, n int, reason string) {
	p.tel.Count(ctx, ev)
	if s := p.tel.Span(ctx); s != nil {
		if reason != "" {
			p.tel.AddEvent(s, ev, telemetry.AttemptKey.Int(n), telemetry.ReasonKey.String(reason))
		} else {
			p.tel.AddEvent(s, ev, telemetry.AttemptKey.Int(n))
		}
	}
}

// window keeps the latest latencies and their quantile.
type window struct {
	q     float64
	d     atomic.Int64 // the quantile; 0 until enough samples
	mu    sync.Mutex   // guards the fields below
	ring  []time.Duration
	next  int
	count int
	buf   []time.Duration // scratch for sorting
}

// minSamples is how many latencies a window needs before its quantile is
// used.
const minSamples = 20

// recompute is how often, in samples, the quantile is computed again.
const recompute = 8

func newWindow(q float64, n int) *window {
	return &window{q: q, ring: make([]time.Duration, 0, n), buf: make([]time.Duration, n)}
}

func (w *window) delay() time.Duration { return time.Duration(w.d.Load()) }

func (w *window) add(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ring) < cap(w.ring) {
		w.ring = append(w.ring, d)
	} else {
		w.ring[w.next] = d
		w.next = (w.next + 1) % len(w.ring)
	}
	w.count++
	if len(w.ring) < min(minSamples, cap(w.ring)) || w.count%recompute != 0 && len(w.ring) != min(minSamples, cap(w.ring)) {
		return
	}
	s := w.buf[:len(w.ring)]
	copy(s, w.ring)
	slices.Sort(s)
	i := int(w.q*float64(len(s)) + 0.5)
	i = min(max(i, 1), len(s)) - 1
	w.d.Store(int64(max(s[i], time.Microsecond)))
}
