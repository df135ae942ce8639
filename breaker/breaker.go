package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
// [ErrOpen]. The error returned by Do also carries RetryIn for
// resilience.RetryAfter, so that a retry policy outside the breaker waits
// for the next probe instead of spinning.
type OpenError struct {
	// Name is the breaker's name; the key for a [Keyed] breaker.
	Name string
	// RetryIn is how long until the breaker lets the next probe through,
	// rounded up to the millisecond. It is zero when the breaker is half-open and its probes are in
	// flight: when it opens or closes next depends on their outcome.
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
type Breaker struct {
	m             *machine
	name          string
	open          time.Duration
	window        time.Duration
	onStateChange func(name string, from, to State)

	tel *telemetry.Policy // shared by the breakers of a Keyed
	// states are the attribute sets of resilience.breaker.state for this
	// breaker, one per State; nil when the breaker is not reported on its
	// own (a Keyed breaker with custom keys).
	states *[3]attribute.Set

	// openUntil is when the breaker last opened plus the open duration, in
	// Unix nanoseconds: when the next probe may go.
	openUntil atomic.Int64

	// State changes are recorded by the machine under its lock and delivered
	// to telemetry and onStateChange by the next call that finds them
	// pending.
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
		onStateChange: c.onStateChange,
		tel:           tel,
		states:        states,
	}
	if c.mode != modeConsecutive {
		b.window = c.window
	}
	b.m = newMachine(c, b.record)
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// Window returns the rolling window over which a failure-ratio breaker
// counts outcomes, or zero for a breaker that counts consecutive failures.
func (b *Breaker) Window() time.Duration { return b.window }

// State returns the breaker's state now.
func (b *Breaker) State() State {
	s := b.m.current(time.Now())
	b.deliver(context.Background())
	return s
}

// Do runs op if the breaker lets the call through, and counts its outcome;
// otherwise it returns an [*OpenError] at once, marked as throttled with
// the time until the next probe (resilience.MarkRetryAfter).
//
// The outcome is read with resilience.Classify: failures
// (resilience.Kind.Failure) count against the dependency, successes for
// it; anything else, such as a rejection (an HTTP 4xx), throttling or the
// caller's cancellation, is not counted. When op returns nil and its result
// is held (a response body still to read, see resilience.Hold), the outcome
// is counted when the result is done, from its final error: a body that
// fails halfway counts as a failure. If op panics, the call is not counted
// and the panic goes on.
func (b *Breaker) Do(ctx context.Context, op func(context.Context) error) error {
	t, st, ok := b.m.allow(time.Now())
	b.deliver(ctx)
	if !ok {
		return b.reject(ctx, st)
	}
	finished := false
	defer func() {
		if !finished {
			b.m.done(t, excluded, time.Now())
			b.deliver(ctx)
		}
	}()
	err := op(ctx)
	finished = true
	if err == nil && resilience.Held(ctx) {
		resilience.Defer(ctx, func(final error) {
			b.m.done(t, outcome(ctx, final), time.Now())
			b.deliver(ctx)
		})
		return nil
	}
	b.m.done(t, outcome(ctx, err), time.Now())
	b.deliver(ctx)
	return err
}

// outcome maps a call's error to what the breaker counts.
func outcome(ctx context.Context, err error) int {
	if errors.Is(ctx.Err(), context.Canceled) {
		return excluded
	}
	switch k := resilience.Classify(err); {
	case k == resilience.KindSuccess:
		return success
	case k.Failure():
		return failure
	}
	return excluded
}

// reject builds the error for a call turned away while the breaker was in
// state st, and reports it.
func (b *Breaker) reject(ctx context.Context, st State) error {
	if st == HalfOpen {
		b.rejected(ctx, HalfOpen, 0)
		return resilience.Mark(&OpenError{Name: b.name, HalfOpen: true}, resilience.KindThrottled)
	}
	// The probe goes once the open duration has passed, strictly: the
	// wait goes just past it, rounded up to the millisecond,
	// so that a caller sleeping that long finds the breaker half-open.
	wait := max(time.Duration(b.openUntil.Load()-time.Now().UnixNano())+1, 0)
	wait = (wait + time.Millisecond - 1).Truncate(time.Millisecond)
	b.rejected(ctx, Open, wait)
	return resilience.MarkRetryAfter(&OpenError{Name: b.name, RetryIn: wait}, resilience.KindThrottled, wait)
}

// record is the machine's change callback: it runs under the machine's
// lock, so it only queues the change for deliver.
func (b *Breaker) record(from, to State) {
	if to == Open {
		b.openUntil.Store(time.Now().Add(b.open).UnixNano())
	}
	b.mu.Lock()
	b.events = append(b.events, stateChange{from, to})
	b.pending.Store(true)
	b.mu.Unlock()
}

// deliver reports the pending state changes to telemetry, with the span in
// ctx, and to onStateChange, outside any lock. Every call into the machine is
// followed by deliver, so a change recorded in a call is delivered by that
// call or by the one already delivering.
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
