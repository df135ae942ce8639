package shed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// A Priority ranks a request for a [Shedder]: under overload, [Sheddable]
// requests are shed first and [Critical] ones last. The zero value is
// [Default].
type Priority int8

// The priorities, lowest first.
const (
	Sheddable Priority = -1 // shed first: prefetches, batch work, retries of background jobs
	Default   Priority = 0  // a request that says nothing
	Critical  Priority = 1  // shed last: what a user waits for
)

// String returns "critical", "default" or "sheddable" ("default" for any
// other value).
func (p Priority) String() string {
	switch p {
	case Critical:
		return "critical"
	case Sheddable:
		return "sheddable"
	}
	return "default"
}

// maxPriorityLen bounds the priority values ParsePriority looks at.
const maxPriorityLen = 16

// ParsePriority returns the priority named by s ("critical", "default" or
// "sheddable", in any case, surrounding spaces ignored). The value comes
// from a client and is not trusted: anything else, an empty or an
// oversized value (over 16 bytes, spaces included) included, is
// [Default], never an error.
func ParsePriority(s string) Priority {
	if len(s) > maxPriorityLen {
		return Default
	}
	s = strings.TrimSpace(s)
	switch {
	case strings.EqualFold(s, "critical"):
		return Critical
	case strings.EqualFold(s, "sheddable"):
		return Sheddable
	}
	return Default
}

// clamp maps any value to one of the three priorities.
func (p Priority) clamp() Priority {
	switch {
	case p > Critical:
		return Critical
	case p < Sheddable:
		return Sheddable
	}
	return p
}

// A Limiter bounds how many requests a [Shedder] runs at once. [Fixed] is
// a fixed bound; an adaptive limiter that moves its bound with the
// latency it observes implements the same two methods, and replaces
// Fixed in [New] without any other change.
//
// The Shedder calls them without holding any lock of its own, from the
// goroutines of the requests; they must be safe for concurrent use and
// must not block.
type Limiter interface {
	// TryAcquire takes a slot and reports whether one was free.
	TryAcquire() bool
	// Release gives back a slot taken by TryAcquire, which was held for
	// d (from admission to the handler's return; 0 when the slot went
	// unused).
	Release(d time.Duration)
}

// Fixed returns a [Limiter] of n slots. It panics if n < 1.
func Fixed(n int) Limiter {
	if n < 1 {
		panic(fmt.Sprintf("shed: Fixed: n must be at least 1, got %d", n))
	}
	return make(fixed, n)
}

// fixed is a counting semaphore of cap(f) slots.
type fixed chan struct{}

func (f fixed) TryAcquire() bool {
	select {
	case f <- struct{}{}:
		return true
	default:
		return false
	}
}

func (f fixed) Release(time.Duration) {
	select {
	case <-f:
	default:
		panic("shed: Release without a slot")
	}
}

// ErrShed is matched (errors.Is) by every [*RejectedError].
var ErrShed = errors.New("shed: request shed")

// ErrDraining is returned by [Shedder.Drain] when it is called again
// while a drain is under way or done; the first Drain's result stands.
var ErrDraining = errors.New("shed: already draining")

// Reason says why a request was shed.
type Reason string

// The reasons a request is shed; they are the values of resilience.reason
// on the shedder's rejected events.
const (
	ReasonLimit        Reason = telemetry.ShedReasonLimit        // every slot taken, and no queue (WithQueue(0, ...))
	ReasonQueueFull    Reason = telemetry.ShedReasonQueueFull    // every slot taken and the queue full of requests of the same or higher priority
	ReasonQueueTimeout Reason = telemetry.ShedReasonQueueTimeout // no slot within the queue's maximum wait
	ReasonPriority     Reason = telemetry.ShedReasonPriority     // pushed out of the full queue by a request of higher priority
	ReasonDraining     Reason = telemetry.ShedReasonDraining     // the Shedder is draining: it admits nothing more
	ReasonCanceled     Reason = telemetry.ShedReasonCanceled     // the request's context ended while it waited in the queue
)

// RejectedError is the error of a request a [Shedder] turned away. It
// matches [ErrShed]; for [ReasonCanceled] it also matches the context's
// error.
type RejectedError struct {
	Reason   Reason
	Priority Priority
	// RetryAfter is when the client may try again: an estimate of the
	// time the queue takes to drain at the rate requests recently
	// finished, in whole seconds, at least 1s and at most the Shedder's
	// maximum (WithMaxRetryAfter); 1s when the Shedder is draining (another
	// replica can take the request) or has not seen a request finish
	// within the last two seconds.
	RetryAfter time.Duration

	cause error // the context's error, for ReasonCanceled
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("shed: %s request shed (%s); retry after %v", e.Priority, e.Reason, e.RetryAfter)
}

// Is reports whether target is ErrShed.
func (e *RejectedError) Is(target error) bool { return target == ErrShed }

// Unwrap returns the context's error of a request canceled while it
// waited, nil otherwise.
func (e *RejectedError) Unwrap() error { return e.cause }

// Shedder admits requests up to its [Limiter]'s bound, queues a bounded
// number more for a bounded time, ordered by priority, and sheds the rest
// (see the package documentation). Acquire admits a request, Drain stops
// admitting for a shutdown. Most users never call Acquire: [Middleware]
// and the gRPC server interceptors of package resiliencegrpc do.
//
// A Shedder is safe for concurrent use; one Shedder may serve several
// handlers, HTTP and gRPC together, to bound their work as one.
type Shedder struct {
	lim      Limiter
	maxQueue int
	maxWait  time.Duration
	maxRetry time.Duration
	tel      *shedTelemetry

	// mu guards the fields below. No Limiter method and no telemetry
	// callback is called while it is held.
	mu       sync.Mutex
	queues   [3][]*waiter // by priority: sheddable, default, critical; oldest first
	waiting  int          // requests in queues
	spare    int          // slots taken from lim for a waiter that had left: given to the next request
	inflight int          // requests admitted and not yet released
	draining bool
	drained  chan struct{} // closed once draining and inflight is 0
	done     doneRate
}

// waiter is a request in the queue.
type waiter struct {
	prio  Priority
	ready chan struct{} // receives once the state is no longer waiting
	state waitState     // guarded by Shedder.mu until ready receives
}

type waitState uint8

const (
	waiting waitState = iota
	granted
	evicted
	drained
)

// New returns a Shedder that runs at most as many requests at once as
// lim allows (Fixed(n) for a fixed bound; an adaptive limiter is a
// one-line change), with a queue of [DefaultMaxQueue] requests that wait
// at most [DefaultMaxWait] (see [WithQueue]). It panics if lim is nil.
func New(lim Limiter, opts ...Option) *Shedder {
	if lim == nil {
		panic("shed: New: lim is nil")
	}
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	s := &Shedder{lim: lim, maxQueue: c.maxQueue, maxWait: c.maxWait, maxRetry: c.maxRetryAfter}
	s.tel = newShedTelemetry(s, &c)
	return s
}

// Acquire admits a request of priority p, waiting in the queue when
// every slot is taken, and returns the function that releases its slot,
// which must be called once the request is done (later calls do
// nothing). A request that is shed gets a nil release and a
// [*RejectedError] saying why and when to retry. A request that waits in
// the queue stops waiting when ctx ends (ReasonCanceled), and a request
// is never admitted once ctx has ended before it got a slot.
//
// The context carries the call's description for telemetry
// (resilience.WithCall): the adapters put the HTTP method or gRPC method
// there, never the client's address.
func (s *Shedder) Acquire(ctx context.Context, p Priority) (release func(), err error) {
	p = p.clamp()
	if err := ctx.Err(); err != nil {
		e := &RejectedError{Reason: ReasonCanceled, Priority: p, RetryAfter: time.Second, cause: err}
		s.tel.rejected(ctx, e)
		return nil, e
	}
	s.mu.Lock()
	if s.draining {
		err := s.rejectLocked(ReasonDraining, p, nil)
		s.mu.Unlock()
		s.tel.rejected(ctx, err)
		return nil, err
	}
	if s.spare > 0 {
		s.spare--
		s.inflight++
		s.mu.Unlock()
		return s.releaser(), nil
	}
	if s.waiting == 0 {
		// Nobody waits: a free slot is this request's. inflight counts it
		// already, so that a Drain started meanwhile waits for it.
		s.inflight++
		s.mu.Unlock()
		if s.lim.TryAcquire() {
			return s.releaser(), nil
		}
		s.mu.Lock()
		s.inflight--
		s.drainedLocked()
		if s.draining {
			err := s.rejectLocked(ReasonDraining, p, nil)
			s.mu.Unlock()
			s.tel.rejected(ctx, err)
			return nil, err
		}
	}
	return s.wait(ctx, p) // unlocks s.mu
}

// wait queues a request of priority p, or sheds it or another; s.mu is
// held on entry and released.
func (s *Shedder) wait(ctx context.Context, p Priority) (func(), error) {
	if s.maxQueue == 0 {
		err := s.rejectLocked(ReasonLimit, p, nil)
		s.mu.Unlock()
		s.tel.rejected(ctx, err)
		return nil, err
	}
	var out *waiter
	if s.waiting >= s.maxQueue {
		// Full: the newest request of the lowest priority below p makes
		// room, or p itself is shed.
		for q := Sheddable; q < p; q++ {
			if l := s.queues[q+1]; len(l) > 0 {
				out = l[len(l)-1]
				s.queues[q+1] = l[:len(l)-1]
				s.waiting--
				out.state = evicted
				break
			}
		}
		if out == nil {
			err := s.rejectLocked(ReasonQueueFull, p, nil)
			s.mu.Unlock()
			s.tel.rejected(ctx, err)
			return nil, err
		}
	}
	w := &waiter{prio: p, ready: make(chan struct{}, 1)}
	s.queues[p+1] = append(s.queues[p+1], w)
	s.waiting++
	s.mu.Unlock()
	if out != nil {
		out.ready <- struct{}{}
	}
	s.tel.queued(ctx, p)
	start := time.Now()
	// A slot freed between the failed TryAcquire and the enqueueing
	// above is found here.
	s.dispatch()

	timer := time.NewTimer(s.maxWait)
	defer timer.Stop()
	var reason Reason
	var cause error
	select {
	case <-w.ready:
	case <-timer.C:
		reason = ReasonQueueTimeout
	case <-ctx.Done():
		reason, cause = ReasonCanceled, ctx.Err()
	}
	s.mu.Lock()
	if w.state == waiting {
		s.removeLocked(w)
		err := s.rejectLocked(reason, p, cause)
		s.mu.Unlock()
		s.tel.rejected(ctx, err)
		return nil, err
	}
	var err *RejectedError
	switch w.state {
	case evicted:
		err = s.rejectLocked(ReasonPriority, p, nil)
	case drained:
		err = s.rejectLocked(ReasonDraining, p, nil)
	}
	s.mu.Unlock()
	if reason != "" {
		<-w.ready // the grant or eviction raced with the timer or ctx
	}
	if err != nil {
		s.tel.rejected(ctx, err)
		return nil, err
	}
	// Granted: the slot is this request's. One granted as its context
	// ended runs anyway only if the context is still alive.
	release := s.releaser()
	if ctx.Err() != nil {
		release()
		err := &RejectedError{Reason: ReasonCanceled, Priority: p, RetryAfter: time.Second, cause: ctx.Err()}
		s.tel.rejected(ctx, err)
		return nil, err
	}
	s.tel.waited(ctx, time.Since(start))
	return release, nil
}

// removeLocked takes w out of its queue.
func (s *Shedder) removeLocked(w *waiter) {
	l := s.queues[w.prio+1]
	for i, x := range l {
		if x == w {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			s.queues[w.prio+1] = l[:len(l)-1]
			s.waiting--
			return
		}
	}
}

// popLocked takes the oldest waiter of the highest priority out of the
// queue and grants it a slot, or returns nil if none waits.
func (s *Shedder) popLocked() *waiter {
	for i := len(s.queues) - 1; i >= 0; i-- {
		if l := s.queues[i]; len(l) > 0 {
			w := l[0]
			copy(l, l[1:])
			l[len(l)-1] = nil
			s.queues[i] = l[:len(l)-1]
			s.waiting--
			w.state = granted
			s.inflight++
			return w
		}
	}
	return nil
}

// dispatch hands free slots to waiters, highest priority first, until no
// one waits or no slot is free.
func (s *Shedder) dispatch() {
	for {
		s.mu.Lock()
		if s.waiting == 0 {
			s.mu.Unlock()
			return
		}
		if s.spare > 0 {
			s.spare--
			w := s.popLocked()
			s.mu.Unlock()
			w.ready <- struct{}{}
			continue
		}
		s.mu.Unlock()
		if !s.lim.TryAcquire() {
			return
		}
		s.mu.Lock()
		w := s.popLocked()
		if w == nil {
			// The waiters left meanwhile: keep the slot for the next
			// request rather than report a use that never was.
			s.spare++
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		w.ready <- struct{}{}
	}
}

// releaser returns the release function of a slot taken now.
func (s *Shedder) releaser() func() {
	start := time.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			held := time.Since(start)
			s.lim.Release(held)
			s.mu.Lock()
			s.inflight--
			s.done.add(time.Now())
			s.drainedLocked()
			s.mu.Unlock()
			s.dispatch()
		})
	}
}

// rejectLocked returns the error of a request shed for reason.
func (s *Shedder) rejectLocked(reason Reason, p Priority, cause error) *RejectedError {
	return &RejectedError{Reason: reason, Priority: p, RetryAfter: s.retryAfterLocked(reason), cause: cause}
}

// retryAfterLocked estimates when a shed request may find room: the time
// the queue (and the request) would take to drain at the rate requests
// finished over the last second or two, rounded up to whole seconds,
// between 1s and the maximum.
func (s *Shedder) retryAfterLocked(reason Reason) time.Duration {
	if reason == ReasonDraining || reason == ReasonCanceled {
		return time.Second
	}
	rate := s.done.rate(time.Now())
	if rate <= 0 {
		return time.Second
	}
	d := time.Duration(float64(s.waiting+1) / rate * float64(time.Second))
	d = (d + time.Second - 1).Truncate(time.Second)
	return min(max(d, time.Second), s.maxRetry)
}

// Drain stops admitting requests, sheds those in the queue
// ([ReasonDraining]), and waits until every admitted request released its
// slot, or until ctx ends, returning ctx.Err(). Requests that arrive
// while it drains, or after, are shed with ReasonDraining (the HTTP
// middleware also asks the client to close its connection). Health
// checks are not requests of the Shedder: the adapters run them whatever
// the Shedder's state. Drain is meant for a shutdown: there is no way
// back. A second call returns [ErrDraining] at once.
func (s *Shedder) Drain(ctx context.Context) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return ErrDraining
	}
	s.draining = true
	s.drained = make(chan struct{})
	var out []*waiter
	for i := range s.queues {
		for _, w := range s.queues[i] {
			w.state = drained
			out = append(out, w)
		}
		clear(s.queues[i])
		s.queues[i] = s.queues[i][:0]
	}
	s.waiting = 0
	s.drainedLocked()
	done := s.drained
	s.mu.Unlock()
	for _, w := range out {
		w.ready <- struct{}{}
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainedLocked closes drained once a drain has nothing left to wait for.
func (s *Shedder) drainedLocked() {
	if s.draining && s.inflight == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// Draining reports whether [Shedder.Drain] was called.
func (s *Shedder) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// InFlight returns the number of requests admitted and not yet released,
// and the number waiting in the queue.
func (s *Shedder) InFlight() (running, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight, s.waiting
}

// doneRate counts finished requests in two one-second buckets, for a
// sliding estimate of the rate at which they finish.
type doneRate struct {
	start     time.Time // of the current bucket
	cur, prev int
}

func (r *doneRate) roll(now time.Time) {
	switch el := now.Sub(r.start); {
	case r.start.IsZero() || el >= 2*time.Second:
		r.start, r.cur, r.prev = now, 0, 0
	case el >= time.Second:
		r.start, r.prev, r.cur = r.start.Add(time.Second), r.cur, 0
	}
}

func (r *doneRate) add(now time.Time) {
	r.roll(now)
	r.cur++
}

// rate returns the requests finished per second over the last second:
// the current bucket and the part of the previous one still in it.
func (r *doneRate) rate(now time.Time) float64 {
	r.roll(now)
	frac := float64(now.Sub(r.start)) / float64(time.Second)
	return float64(r.prev)*(1-frac) + float64(r.cur)
}
