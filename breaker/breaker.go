package breaker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// ErrOpen is matched, with errors.Is, by every error a breaker returns when
// it turns a call away: while it is open, and while it is half-open with
// all its probes in flight. The error is an [*OpenError].
var ErrOpen = errors.New("breaker: circuit open")

// OpenError is the error of a call turned away by a breaker. It matches
// [ErrOpen]. The error returned by Do is marked as refused
// (resilience.KindRefused), so that no retry policy retries it and the call
// fails fast; with [WithWaitForProbe] it is marked as throttled instead and
// carries a delay for resilience.RetryAfter.
type OpenError struct {
	// Name is the breaker's name; the key for a [Keyed] breaker.
	Name string
	// RetryIn is how long until the breaker lets the next probe through,
	// rounded up to the millisecond. It is zero when the breaker is
	// half-open and its probes are in flight: when it opens or closes next
	// depends on their outcome.
	RetryIn time.Duration
	// HalfOpen reports whether the breaker was half-open.
	HalfOpen bool
}

func (e *OpenError) Error() string {
	name := ""
	if e.Name != "" {
		name = " " + e.Name
	}
	if e.HalfOpen {
		return fmt.Sprintf("breaker%s: circuit half-open, probes in flight", name)
	}
	return fmt.Sprintf("breaker%s: circuit open, next probe in %v", name, e.RetryIn)
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// State is a breaker's state.
type State uint8

const (
	// Closed: calls go through and their outcomes are counted.
	Closed State = iota
	// Open: calls are turned away with ErrOpen.
	Open
	// HalfOpen: a few probes go through; their outcome closes or reopens
	// the breaker.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Breaker is a circuit breaker: a [resilience.Policy] that stops calling a
// dependency that is failing, and tries it again after a while. Build it
// with [New]; it is safe for concurrent use. The zero Breaker is not
// usable.
//
// Its state machine is a gobreaker.CircuitBreaker: closed, open and
// half-open states, a rolling window of buckets, generations that drop the
// outcomes of calls that began before a change of state. Beside it the
// breaker keeps what gobreaker does not count (the run of failures that
// answers, not only successes, end; slow calls; when the next probe goes)
// and delivers state changes outside any lock.
type Breaker struct {
	cb            *gobreaker.CircuitBreaker[struct{}]
	name          string
	open          time.Duration
	window        time.Duration
	waitForProbe  bool
	slow          time.Duration // 0: slow calls are not counted
	onStateChange func(name string, from, to State)

	// Rules, read by trip under gobreaker's lock.
	ratio       float64
	minCalls    uint32
	consecutive uint32
	slowRatio   float64
	side        tally

	tel *telemetry.Policy // shared by the breakers of a Keyed
	// states are the attribute sets of resilience.breaker.state for this
	// breaker, one per State; nil when the breaker is not reported on its
	// own (a Keyed breaker with custom keys).
	states *[3]attribute.Set

	// openUntil is when the breaker last opened plus the open duration, in
	// Unix nanoseconds: when the next probe may go.
	openUntil atomic.Int64
	// changes counts the changes of state, so that the final outcome of a
	// stream is dropped if the state changed since it committed.
	changes atomic.Uint64

	// State changes are recorded by gobreaker's OnStateChange, under its
	// lock, and delivered to telemetry and onStateChange by the next call
	// that finds them pending.
	pending atomic.Bool // len(events) > 0, read without mu
	mu      sync.Mutex  // guards events and delivering; never held while calling out
	events  []stateChange
	// delivering is true while a goroutine delivers events, so that they
	// are delivered one at a time, in order.
	delivering bool
}

type stateChange struct{ from, to State }

// New returns a breaker configured by opts. It panics, naming the option,
// if an option's value is invalid, or if given an option that applies to
// [NewKeyed] only.
//
// The breaker reports its state in resilience.breaker.state; its state
// changes and rejections are counted in resilience.events and added as
// events to the span in the call's context (see docs/telemetry.md).
func New(opts ...Option) *Breaker {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	c.validate(false)
	c.tel.Name = c.name
	tel := telemetry.New(telemetry.KindBreaker, c.tel)
	b := newBreaker(&c, c.name, tel, stateSets(tel, ""))
	observeStates(tel, b, func(b *Breaker, o metric.Observer, g metric.Int64Observable) {
		b.observe(o, g)
	})
	return b
}

func newBreaker(c *config, name string, tel *telemetry.Policy, states *[3]attribute.Set) *Breaker {
	b := &Breaker{
		name:          name,
		open:          c.open,
		window:        c.window,
		waitForProbe:  c.waitForProbe,
		slow:          c.slow,
		onStateChange: c.onStateChange,
		ratio:         c.ratio,
		minCalls:      uint32(c.minCalls),
		consecutive:   uint32(c.consecutive),
		slowRatio:     c.slowRatio,
		tel:           tel,
		states:        states,
	}
	b.side.init(c.window, c.bucket, time.Now())
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          name,
		MaxRequests:   uint32(c.probes),
		Interval:      c.window,
		BucketPeriod:  c.bucket,
		Timeout:       c.open,
		ReadyToTrip:   b.trip,
		OnStateChange: b.record,
		IsExcluded:    b.excluded,
	})
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// Window returns the rolling window over which the breaker counts outcomes.
func (b *Breaker) Window() time.Duration { return b.window }

// State returns the breaker's state now.
func (b *Breaker) State() State {
	s := fromGobreaker(b.cb.State())
	b.deliver(context.Background())
	return s
}

// Do runs op if the breaker lets the call through, and counts its outcome;
// otherwise it returns an [*OpenError] at once, marked as refused
// (resilience.KindRefused) so that no retry policy retries it, or with
// [WithWaitForProbe] as throttled with the time until the next probe.
//
// The outcome is op's error, read with resilience.Classify: failures
// (resilience.Kind.Failure) count against the dependency, successes for
// it. Not counted: a throttled or rejected answer (an HTTP 429 or 4xx), a
// call refused by a policy inside the breaker, and any error of a call
// whose own context (ctx) ended, by the caller's cancellation or deadline
// or by an outer total timeout: those say nothing about the dependency. An
// attempt timeout inside the breaker, which ends the attempt while ctx is
// alive, is a failure.
//
// The outcome is counted when op returns, through gobreaker's Execute,
// which allocates nothing. When the call's outcome comes later
// (resilience.Call.OutcomeAtEnd, a gRPC stream) and op returns nil with
// its result held (resilience.Hold), the call has committed (the stream
// has its header). A probe's verdict is then the commit: the breaker,
// half-open, closes at once, however long the stream lives. A call let
// through while the breaker is closed is counted when its result is done,
// from its final error, so that a stream that fails halfway counts as a
// failure, unless the breaker changed state in the meantime.
//
// If op panics, the call is not counted and the panic goes on.
func (b *Breaker) Do(ctx context.Context, op func(context.Context) error) error {
	if c, ok := resilience.CallFrom(ctx); ok && c.OutcomeAtEnd {
		return b.doAtEnd(ctx, op)
	}
	var err error
	_, v := b.cb.Execute(func() (struct{}, error) {
		b.deliver(ctx) // a change noticed on the way in (open to half-open)
		var began time.Time
		if b.slow > 0 {
			began = time.Now()
		}
		err = op(ctx)
		return struct{}{}, b.verdict(ctx, err, b.slow > 0 && time.Since(began) > b.slow).err()
	})
	if v == gobreaker.ErrOpenState || v == gobreaker.ErrTooManyRequests {
		return b.reject(ctx, v)
	}
	b.deliver(ctx)
	return err
}

// doAtEnd is Do for a call whose outcome comes when its held result ends
// (resilience.Call.OutcomeAtEnd: a gRPC stream, whose final status comes
// last).
//
// gobreaker has a two-step API for outcomes that come later
// (TwoStepCircuitBreaker.Allow returns a function to call with the
// outcome), and the breaker does not use it. A TwoStepCircuitBreaker wraps
// a CircuitBreaker of its own and has no Execute, so every call, unary
// ones included, would go through Allow, whose function is an allocation
// per call where Execute allocates nothing. And a probe that Allow lets
// through keeps its half-open slot until that function is called: at the
// stream's end, so that a long-lived stream (a watch) taken as the probe
// would keep the breaker half-open, turning every other call away, for as
// long as it lives.
//
// Instead the call runs in Execute, gobreaker's zero-cost path, until it
// commits: op returns once the stream has its header, or has failed. What
// Execute counts is then the commit. A failure before it counts as any
// call's does. For a probe (the breaker is half-open) the commit is the
// verdict: the dependency answered, and the breaker closes without
// waiting for the end. For a call let through while closed, the commit
// counts nothing (it is excluded), and the stream's final outcome is
// counted when it ends, as a call of its own through Execute, whose
// function returns it at once. That second count is dropped if the
// breaker changed state since the commit, as gobreaker drops the outcome
// of a call that began in an earlier state (its generations); a probe's
// own end is dropped so, since its verdict changed the state.
func (b *Breaker) doAtEnd(ctx context.Context, op func(context.Context) error) error {
	var (
		err               error
		slow, probe, held bool
		gen               uint64
	)
	_, v := b.cb.Execute(func() (struct{}, error) {
		b.deliver(ctx) // a change noticed on the way in (open to half-open)
		probe = b.cb.State() == gobreaker.StateHalfOpen
		gen = b.changes.Load()
		var began time.Time
		if b.slow > 0 {
			began = time.Now()
		}
		err = op(ctx)
		slow = b.slow > 0 && time.Since(began) > b.slow
		held = err == nil && resilience.Held(ctx)
		if held && !probe {
			return struct{}{}, neutral // counted at the end
		}
		return struct{}{}, b.verdict(ctx, err, slow).err()
	})
	if v == gobreaker.ErrOpenState || v == gobreaker.ErrTooManyRequests {
		return b.reject(ctx, v)
	}
	b.deliver(ctx)
	if held && !probe {
		resilience.Defer(ctx, func(final error) { b.countEnd(ctx, gen, b.verdict(ctx, final, slow)) })
	}
	return err
}

// countEnd counts the final outcome v of a call that committed while the
// breaker was closed, unless the breaker changed state since (gen).
func (b *Breaker) countEnd(ctx context.Context, gen uint64, v verdict) {
	if v == neutral || b.changes.Load() != gen {
		return
	}
	b.cb.Execute(func() (struct{}, error) {
		if b.changes.Load() != gen {
			return struct{}{}, neutral // it changed in between
		}
		return struct{}{}, v.err()
	})
	b.deliver(ctx)
}

// verdict is what a call's outcome means to the breaker. It travels from
// the function given to gobreaker's Execute to the breaker's IsExcluded and
// ReadyToTrip, as the error gobreaker counts; a small integer converted to
// an error does not allocate.
type verdict uint8

const (
	success     verdict = iota // counted for the dependency; ends a run of failures
	failure                    // counted against it
	slowFailure                // a failure, and slow
	slowSuccess                // slow: counted by gobreaker as a failure, so that ReadyToTrip runs; not a failure for the ratio
	answered                   // throttled or rejected: not counted; ends a run of failures
	neutral                    // not counted at all: the caller gave up, a policy refused, op panicked
)

func (v verdict) Error() string { return "breaker: outcome " + fmt.Sprint(uint8(v)) }

// err is v as gobreaker's error: nil for a success, which gobreaker's
// default IsSuccessful counts as one.
func (v verdict) err() error {
	if v == success {
		return nil
	}
	return v
}

// verdict judges a call's outcome. ctx is the breaker's context: the call's
// own, or an attempt's within it, never narrowed by a timeout inside the
// breaker.
func (b *Breaker) verdict(ctx context.Context, err error, slow bool) verdict {
	if err == nil {
		if slow {
			return slowSuccess
		}
		return success
	}
	if callEnded(ctx) {
		// The call's own context ended: whatever op says, the caller (or
		// an outer total timeout) cut it short.
		return neutral
	}
	switch k := resilience.Classify(err); {
	case k == resilience.KindSuccess:
		return success
	case k.Failure() && slow:
		return slowFailure
	case k.Failure():
		return failure
	case k == resilience.KindThrottled || k == resilience.KindRejected:
		return answered
	}
	return neutral
}

// callEnded reports whether ctx ended, or its deadline passed: a gRPC
// call's deadline travels to the server, whose DeadlineExceeded may come
// back before ctx's own timer has fired.
func callEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// excluded is gobreaker's IsExcluded. gobreaker calls it under its lock
// for every outcome of the current generation, before counting it, so it
// is where the breaker's own tally follows the same outcomes.
func (b *Breaker) excluded(err error) bool {
	v, ok := err.(verdict)
	if !ok && err != nil {
		// gobreaker's own error for a panic in op: not counted.
		return true
	}
	b.side.add(v)
	return v == answered || v == neutral
}

// trip is gobreaker's ReadyToTrip, called under its lock after a failure
// was counted while closed: it applies the breaker's rules.
func (b *Breaker) trip(c gobreaker.Counts) bool {
	s := b.side.sums(time.Now())
	if s.run >= b.consecutive {
		return true
	}
	total := c.TotalSuccesses + c.TotalFailures
	if total < b.minCalls {
		return false
	}
	// gobreaker counts slow successes as failures; they are not.
	failed := c.TotalFailures - min(s.slowOK, c.TotalFailures)
	if float64(failed) >= b.ratio*float64(total) {
		return true
	}
	return b.slow > 0 && float64(s.slow) >= b.slowRatio*float64(total)
}

// reject builds the error for a call that gobreaker turned away with err,
// and reports it.
func (b *Breaker) reject(ctx context.Context, err error) error {
	b.deliver(ctx)
	kind := resilience.KindRefused
	if b.waitForProbe {
		kind = resilience.KindThrottled
	}
	if err == gobreaker.ErrTooManyRequests {
		b.rejected(ctx, HalfOpen, 0)
		return resilience.Mark(&OpenError{Name: b.name, HalfOpen: true}, kind)
	}
	// The probe goes once the open duration has passed, strictly: the
	// wait goes just past it, rounded up to the millisecond, so that a
	// caller sleeping that long finds the breaker half-open.
	wait := max(time.Duration(b.openUntil.Load()-time.Now().UnixNano())+1, 0)
	wait = (wait + time.Millisecond - 1).Truncate(time.Millisecond)
	b.rejected(ctx, Open, wait)
	oe := &OpenError{Name: b.name, RetryIn: wait}
	if !b.waitForProbe {
		return resilience.Mark(oe, kind)
	}
	// Spread the callers that wait over a quarter of the open duration
	// after the probe, so that they do not come back together.
	return resilience.MarkRetryAfter(oe, kind, wait+rand.N(b.open/4+1))
}

// record is gobreaker's OnStateChange: it runs under gobreaker's lock, so
// it only starts the new state's tally and queues the change for deliver.
func (b *Breaker) record(_ string, from, to gobreaker.State) {
	now := time.Now()
	f, t := fromGobreaker(from), fromGobreaker(to)
	if t == Open {
		b.openUntil.Store(now.Add(b.open).UnixNano())
	}
	b.side.reset(now)
	b.changes.Add(1)
	b.mu.Lock()
	b.events = append(b.events, stateChange{f, t})
	b.pending.Store(true)
	b.mu.Unlock()
}

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}

// deliver reports the pending state changes to telemetry, with the span in
// ctx, and to onStateChange, outside any lock. Every call into gobreaker
// is followed by deliver, so a change recorded in a call is delivered by
// that call or by the one already delivering.
func (b *Breaker) deliver(ctx context.Context) {
	if !b.pending.Load() {
		return
	}
	b.mu.Lock()
	if b.delivering {
		b.mu.Unlock()
		return
	}
	b.delivering = true
	defer func() {
		// Also on a panic in onStateChange, so that later changes are
		// still delivered.
		b.mu.Lock()
		b.delivering = false
		b.mu.Unlock()
	}()
	for len(b.events) > 0 {
		evs := b.events
		b.events = nil
		b.pending.Store(false)
		b.mu.Unlock()
		for _, e := range evs {
			b.changed(ctx, e.from, e.to)
			if b.onStateChange != nil {
				b.onStateChange(b.name, e.from, e.to)
			}
		}
		b.mu.Lock()
	}
	b.mu.Unlock()
}
