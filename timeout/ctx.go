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
// the rest of the policy.
type timerCtx struct {
	parent   context.Context
	deadline time.Time
	follow   ctxwatch.Reg // the registration with the parent

	ended atomic.Bool // set, under mu, once err is: Err's lock-free path
	timed atomic.Bool // set, under mu, once the timer is armed or stopped for good: Err need not read the clock
	mu    sync.Mutex  // guards the fields below; never held while calling out
	// The flags sit beside the mutex, where the struct has room.
	fired     bool          // the end came from the policy's deadline
	following bool          // follow holds a registration to stop at the end
	stopped   bool          // the policy stopped its deadline (see stopTimer): never arm
	timer     *time.Timer   // armed on first need (see armLocked); nil until then
	done      chan struct{} // made on the first Done, closed at the end
	err       error         // nil until the end
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
	if err := parent.Err(); err != nil {
		c.err = err
		c.ended.Store(true)
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
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	c.armLocked()
	return c.done
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
// still end by its deadline: something now waits for the end. A deadline
// already past fires at once, on the timer's goroutine. c.mu must be held.
func (c *timerCtx) armLocked() {
	if c.timer != nil || c.stopped || c.err != nil {
		return
	}
	c.timer = afterFunc(time.Until(c.deadline), c.expire)
	c.timed.Store(true)
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

func (c *timerCtx) Value(key any) any { return c.parent.Value(key) }

// AfterFunc runs f, on the goroutine that ends the context, when it ends;
// at once, on its own goroutine, if it already has. Contexts derived from
// this one use it to follow it without a goroutine of their own.
func (c *timerCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
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
	c.armLocked()
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
func (c *timerCtx) expire() { c.end(context.DeadlineExceeded, true) }

func (c *timerCtx) parentDone() { c.end(c.parent.Err(), false) }

// cancel ends the context once the operation and its result are done.
func (c *timerCtx) cancel() { c.end(context.Canceled, false) }

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

func (c *timerCtx) end(err error, fromTimer bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err, c.fired = err, fromTimer
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
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	c.watchers.Push(r)
	c.armLocked()
	return true
}

// RemoveWatch removes r and reports whether its watcher was not told yet.
func (c *timerCtx) RemoveWatch(r *ctxwatch.Reg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watchers.Remove(r)
}
