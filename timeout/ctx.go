package timeout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience/internal/ctxwatch"
)

// timerCtx is the context a [Policy] runs its operation with: the parent's
// values, the policy's deadline, and an end that comes from the policy's
// deadline, from the parent, or from the policy itself once the operation
// and its held result are done. It takes one allocation, where
// context.WithDeadline and a cancel cause took five; it starts no
// goroutine. Contexts derived from it follow it through AfterFunc, and the
// module's own (a nested timeout, a held result) through AddWatch, which
// allocates nothing (internal/ctxwatch).
//
// Its timer is armed only when something waits for the end: Done,
// AfterFunc or AddWatch. An operation that only asks Err (a function that
// checks its context between steps, the policies around it) costs no
// timer: Err reads the clock instead, and ends the context once the
// deadline has passed. Arming and stopping a runtime timer costs more than
// the rest of the policy. A deadline that passes unarmed counts as if the
// timer had fired then: whatever asks or ends the context after it (Err,
// Done, AfterFunc, the parent's end, the policy's cancel) finds it ended by
// its deadline, as a context.WithTimeout would be.
//
// It answers as context.WithTimeout does in every other way a caller can
// observe it, context.Cause included (see Value), with one difference: a
// parent that is not one of this module's contexts tells it that it ended
// through context.AfterFunc, on a goroutine of its own, a moment after
// its cancel returns, as it does any context not made by the context
// package.
type timerCtx struct {
	parent   context.Context
	deadline time.Time
	follow   ctxwatch.Reg // the registration with the parent

	ended atomic.Bool // set, under mu, once err is: Err's lock-free path
	timed atomic.Bool // set, under mu, once the timer is armed or stopped for good: Err need not read the clock
	mu    sync.Mutex  // guards the fields below; never held while calling out
	// The flags sit beside the mutex, where the struct has room.
	fired     bool          // the end came from the policy's deadline
	byParent  bool          // the end came from the parent
	following bool          // follow holds a registration to stop at the end
	stopped   bool          // the policy stopped its deadline (see stopTimer): never arm
	timer     *time.Timer   // armed on first need (see armLocked); nil until then
	done      chan struct{} // made on the first Done, closed at the end
	err       error         // nil until the end
	causeCtx  any           // with byParent: what Value answers for context.Cause (see Value)
	funcs     []func()      // registered with AfterFunc, run at the end; nil once stopped
	first     [2]func()     // funcs' first backing array: most calls register one or two
	watchers  ctxwatch.List // registered by the module's own contexts (AddWatch)
}

// closedChan is the Done channel of a context that ended before anyone
// asked for one.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// newTimerCtx returns the context, ending at deadline and following
// parent's end.
func newTimerCtx(parent context.Context, deadline time.Time) *timerCtx {
	c := &timerCtx{parent: parent, deadline: deadline}
	if parent.Err() != nil {
		c.parentDone()
		return c
	}
	// A parent that never ends takes no registration; this module's own
	// contexts take one that allocates nothing.
	if !c.follow.Watch(parent, (*parentWatch)(c)) {
		c.parentDone() // it ended in between
		return c
	}
	if !c.follow.Active() {
		return c // nothing registered: nothing to stop at the end
	}
	c.mu.Lock()
	stop := c.err != nil // it ended in between
	c.following = !stop
	c.mu.Unlock()
	if stop {
		c.follow.Stop()
	}
	return c
}

// parentWatch is a timerCtx as the watcher of its parent; a type of its
// own, so that the context does not show a ContextEnded method.
type parentWatch timerCtx

func (w *parentWatch) ContextEnded() { (*timerCtx)(w).parentDone() }

func (c *timerCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *timerCtx) Done() <-chan struct{} {
	c.mu.Lock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	done, due := c.done, c.armLocked()
	c.mu.Unlock()
	if due {
		c.expire() // closes done
	}
	return done
}

func (c *timerCtx) Err() error {
	if !c.ended.Load() {
		// The common case, every policy asks: no lock, and no clock
		// while a timer will end the context.
		if c.timed.Load() || time.Until(c.deadline) > 0 {
			return nil
		}
		c.expireUnarmed()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// armLocked arms the timer, if it is not armed yet and the context can
// still end by its deadline: something now waits for the end. It reports
// true, arming nothing, if the deadline has already passed: the caller
// then ends the context (expire), once it has released c.mu, as the timer
// would have at the deadline. c.mu must be held.
func (c *timerCtx) armLocked() (due bool) {
	if c.timer != nil || c.stopped || c.err != nil {
		return false
	}
	d := time.Until(c.deadline)
	if d <= 0 {
		return true
	}
	c.timer = afterFunc(d, c.expire)
	c.timed.Store(true)
	return false
}

// expireUnarmed ends the context by its deadline, which has passed, unless
// a timer will, or the policy stopped the deadline.
func (c *timerCtx) expireUnarmed() {
	c.mu.Lock()
	unarmed := c.timer == nil && !c.stopped
	c.mu.Unlock()
	if unarmed {
		c.expire()
	}
}

// Value returns the parent's value for key, except for the key
// context.Cause looks up: there it answers as a context.WithTimeout would.
// Once the context ended by its deadline or by the policy's cancel, it
// answers nothing, so that Cause reports Err, not the cause a parent is
// canceled with later. Once it ended by its parent, it answers what the
// parent did then: the cancel context of the context package whose cause
// the parent ended with, or nothing if there was none.
func (c *timerCtx) Value(key any) any {
	if key == cancelCtxKey {
		c.mu.Lock()
		ended, byParent, cc := c.err != nil, c.byParent, c.causeCtx
		c.mu.Unlock()
		if ended {
			if byParent {
				return cc
			}
			return nil
		}
	}
	return c.parent.Value(key)
}

// cancelCtxKey is the key context.Cause looks the nearest cancel context
// of the context package up with, found by asking Cause about a context
// that records it (an unexported variable of the context package: Cause
// is the only way to learn it). Nil if Cause ever stops asking; Value then
// answers for the parent, as it did before Cause had to be matched.
var cancelCtxKey = func() any {
	var p keyProbe
	_ = context.Cause(&p)
	return p.key
}()

// keyProbe is an ended context that records the key it is asked for.
type keyProbe struct {
	context.Context // nil: only Err and Value are called
	key             any
}

func (*keyProbe) Err() error          { return context.Canceled }
func (p *keyProbe) Value(key any) any { p.key = key; return nil }

// AfterFunc runs f, on the goroutine that ends the context, when it ends;
// at once, on its own goroutine, if it already has. Contexts derived from
// this one use it to follow it without a goroutine of their own.
func (c *timerCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.armLocked() {
		// The deadline has passed: the context has ended, and f runs as
		// it would have had the timer fired then.
		c.mu.Unlock()
		c.expire()
		c.mu.Lock()
	}
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.funcs == nil {
		c.funcs = c.first[:0]
	}
	i := len(c.funcs)
	c.funcs = append(c.funcs, f)
	c.mu.Unlock()
	// funcs only grows until the end, when it is dropped: i stays f's
	// index for as long as f may run.
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i < len(c.funcs) && c.funcs[i] != nil {
			c.funcs[i] = nil
			return true
		}
		return false
	}
}

// expire ends the context by its deadline: the timer's function.
func (c *timerCtx) expire() { c.end(context.DeadlineExceeded, endDeadline, nil) }

// parentDone ends the context by its parent's end, noting what
// context.Cause reported for the parent then: a context derived from a
// context.WithTimeout keeps its parent's cause at the time it ended.
func (c *timerCtx) parentDone() {
	cc := c.parent.Value(cancelCtxKey)
	if p, ok := cc.(context.Context); !ok || p.Err() == nil {
		// No cancel context above, or not the one that ended: Cause
		// reports the parent's Err, and so will Cause of this context.
		cc = nil
	}
	c.end(c.parent.Err(), endParent, cc)
}

// cancel ends the context once the operation and its result are done.
func (c *timerCtx) cancel() { c.end(context.Canceled, endCancel, nil) }

// How a context ended.
const (
	endDeadline = iota // its own deadline
	endParent          // its parent ended
	endCancel          // the policy canceled it
)

// Release is cancel, deferred for a held result (resilience.DeferRelease).
func (c *timerCtx) Release(error) { c.cancel() }

// hasFired reports whether the policy's deadline ended the context.
func (c *timerCtx) hasFired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fired
}

// stopTimer stops the policy's deadline for good: the timer, if armed, is
// stopped and none is armed later. armed reports whether a timer had been
// armed, stopped whether this call stopped it before it fired.
func (c *timerCtx) stopTimer() (armed, stopped bool) {
	c.mu.Lock()
	c.stopped = true
	c.timed.Store(true)
	t := c.timer
	c.mu.Unlock()
	return t != nil, t != nil && t.Stop()
}

// end ends the context with err, how says why; causeCtx is what Value
// answers for context.Cause when the parent ended it.
func (c *timerCtx) end(err error, how int, causeCtx any) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if how != endDeadline && !c.timed.Load() && !time.Now().Before(c.deadline) {
		// Neither armed nor stopped, and the deadline has passed: it
		// ended then, before whatever ends it now.
		err, how, causeCtx = context.DeadlineExceeded, endDeadline, nil
	}
	fromTimer := how == endDeadline
	c.err, c.fired, c.byParent, c.causeCtx = err, fromTimer, how == endParent, causeCtx
	c.ended.Store(true)
	if c.done != nil {
		close(c.done)
	}
	funcs, following, t := c.funcs, c.following, c.timer
	c.funcs, c.following = nil, false
	c.mu.Unlock()
	if !fromTimer && t != nil {
		t.Stop()
	}
	if following {
		c.follow.Stop()
	}
	for _, f := range funcs {
		if f != nil {
			f()
		}
	}
	for {
		c.mu.Lock()
		w := c.watchers.Pop()
		c.mu.Unlock()
		if w == nil {
			return
		}
		w.ContextEnded()
	}
}

// AddWatch registers r to be told when the context ends (see
// internal/ctxwatch), or reports false if it has ended.
func (c *timerCtx) AddWatch(r *ctxwatch.Reg) bool {
	c.mu.Lock()
	if c.armLocked() {
		c.mu.Unlock()
		c.expire()
		return false
	}
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	c.watchers.Push(r)
	return true
}

// RemoveWatch removes r and reports whether its watcher was not told yet.
func (c *timerCtx) RemoveWatch(r *ctxwatch.Reg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watchers.Remove(r)
}
