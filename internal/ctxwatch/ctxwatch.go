// Package ctxwatch lets the module's own contexts tell each other that they
// ended without allocating: a watcher embeds a [Reg], one per
// registration, and is told through an interface holding a pointer, where
// context.AfterFunc takes a closure and returns another.
//
// A context that ends by itself (the timeout package's) is a source: it
// keeps its registrations in a [List]. A context that only wraps another
// (the root package's call and attempt contexts) forwards registrations to
// the context it wraps with [Forward]. Any other context is watched through
// its AfterFunc method, or context.AfterFunc, as before.
package ctxwatch

import "context"

// A Watcher is told when the context it watches ends.
type Watcher interface {
	// ContextEnded runs once, on the goroutine that ends the context,
	// with no lock of the context held.
	ContextEnded()
}

// A Reg is one registration of a Watcher with a context. Embed it in the
// watcher's own struct. It must not be copied once in use, and serves one
// registration: Watch once, Stop at most once.
type Reg struct {
	w          Watcher
	src        Source      // the source that holds the registration
	stop       func() bool // or the stop of an AfterFunc registration
	prev, next *Reg        // in src's List, guarded by src's lock
}

// Source is a context that keeps its registrations itself.
type Source interface {
	// AddWatch adds r to the context's registrations, or reports false
	// if the context has already ended.
	AddWatch(r *Reg) bool
	// RemoveWatch removes r and reports whether it did so before the
	// context told r's watcher that it ended.
	RemoveWatch(r *Reg) bool
}

// forwarder is a context that ends exactly when the context it wraps does.
type forwarder interface {
	ForwardWatch(r *Reg) bool
}

// afterFuncer is a context that runs a function when it ends, as the
// context package's own look for.
type afterFuncer interface {
	AfterFunc(func()) func() bool
}

// Watch arranges for w.ContextEnded to run once when ctx ends. It reports
// false, registering nothing, if ctx has already ended; the caller then
// handles the end itself. A ctx that can never end takes no registration.
func (r *Reg) Watch(ctx context.Context, w Watcher) bool {
	r.w = w
	return Forward(ctx, r)
}

// Forward registers r, whose watcher is set, with ctx: a forwarding
// context's ForwardWatch calls it with the context it wraps.
func Forward(ctx context.Context, r *Reg) bool {
	switch c := ctx.(type) {
	case Source:
		r.src = c
		if !c.AddWatch(r) {
			r.src = nil
			return false
		}
		return true
	case forwarder:
		return c.ForwardWatch(r)
	case afterFuncer:
		if ctx.Err() != nil {
			return false
		}
		r.stop = c.AfterFunc(r.w.ContextEnded)
		return true
	}
	if ctx.Done() == nil {
		return true // it never ends
	}
	if ctx.Err() != nil {
		return false
	}
	r.stop = context.AfterFunc(ctx, r.w.ContextEnded)
	return true
}

// Active reports whether Watch registered r with its context: false when
// the context can never end.
func (r *Reg) Active() bool { return r.src != nil || r.stop != nil }

// Stop removes the registration made by Watch and reports whether it did
// so before the watcher was told; false too when Watch registered nothing.
// It must not run at the same time as Watch.
func (r *Reg) Stop() bool {
	switch {
	case r.src != nil:
		return r.src.RemoveWatch(r)
	case r.stop != nil:
		return r.stop()
	}
	return false
}

// List is a source's registrations, in the order they were added. Its
// methods must be called with the source's lock held.
type List struct {
	head, tail *Reg
}

// Push adds r at the end.
func (l *List) Push(r *Reg) {
	r.prev, r.next = l.tail, nil
	if l.tail == nil {
		l.head = r
	} else {
		l.tail.next = r
	}
	l.tail = r
}

// Remove removes r and reports whether it was in l. A Reg is in at most
// one List, its source's, so r is in l when it is l's head or has a
// predecessor.
func (l *List) Remove(r *Reg) bool {
	if r.prev == nil && l.head != r {
		return false
	}
	if r.prev == nil {
		l.head = r.next
	} else {
		r.prev.next = r.next
	}
	if r.next == nil {
		l.tail = r.prev
	} else {
		r.next.prev = r.prev
	}
	r.prev, r.next = nil, nil
	return true
}

// Pop removes the first registration and returns its watcher, or nil when
// l is empty. A source that ended pops and tells its watchers one at a
// time, releasing its lock to tell each, so that a watcher removed in
// between is not told.
func (l *List) Pop() Watcher {
	r := l.head
	if r == nil {
		return nil
	}
	l.Remove(r)
	return r.w
}
