// Package keyed holds one value per key in a bounded registry that forgets
// idle keys. The keyed variants of breaker, bulkhead and ratelimit share it,
// so that a client talking to a million distinct hosts keeps at most a fixed
// number of per-host instances.
//
// A value is in use between [Registry.Acquire] and the matching
// [Registry.Release]; a value in use is never evicted, so that a bulkhead's
// slots or a breaker's outcome bookkeeping stay with the calls that took
// them. Looking up a key that holds a value takes no lock and allocates
// nothing: it is the path every call takes. When a new key would exceed
// the maximum, the least recently released idle values are dropped to make
// room (a tenth of the maximum at once, so that a client cycling through
// more hosts than the maximum does not scan the registry on every call).
// Values idle for longer than the idle timeout are dropped by a sweep that
// runs, at most once per eighth of the idle timeout, when a new key is
// made. If every value is in use the registry grows past its maximum by at
// most the number of keys with calls in flight, and shrinks back to it as
// they are released. No goroutine is started.
//
// Release does not read the clock (it costs more than the rest of the
// lookup on some virtual machines). Recency is a logical tick instead: the
// registry's count of keys made, which Release copies into the entry. That
// orders entries for the size bound (entries released between the same two
// new keys tie), and the idle sweep turns it into time: a sweep notes when
// it first finds an entry idle with a given tick, and a later sweep drops
// the entry once the idle timeout has passed since then with no release in
// between. A value is therefore never dropped before it has been idle for
// the idle timeout, and is dropped by the first sweep at least the idle
// timeout after the first sweep that found it idle.
package keyed

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
)

// Registry maps keys to values made on first use. It is safe for concurrent
// use. The zero Registry is not usable; build it with [New].
type Registry[V any] struct {
	newValue func(key string) V
	max      int
	idle     time.Duration
	now      func() time.Time

	m    sync.Map     // string -> *Entry[V]; read without mu
	size atomic.Int64 // entries in m
	tick atomic.Int64 // keys made so far: the logical clock Release copies; moved under mu

	mu        sync.Mutex // serialises adding and removing entries; newValue runs under it and must not call back
	nextSweep time.Time  // when idle values are next looked for; guarded by mu
}

// Entry is a registry's value for one key.
type Entry[V any] struct {
	Value V

	key  string
	reg  *Registry[V]
	refs atomic.Int32 // calls using the entry; -1 once evicted
	last atomic.Int64 // the registry's tick when the entry was last released

	// Guarded by the registry's mu: what the idle sweep saw.
	sweptTick int64 // last, when a sweep first found the entry idle with it
	idleSince int64 // when that sweep ran, in Unix nanoseconds; 0 if none has
}

// Key returns the entry's key.
func (e *Entry[V]) Key() string { return e.key }

// Release ends one use of e, as Registry.Release(e) does, so that a held
// result can release it (resilience.DeferRelease) without a closure.
func (e *Entry[V]) Release(error) { e.reg.Release(e) }

// ref takes one use of e, unless it was evicted.
func (e *Entry[V]) ref() bool {
	for {
		n := e.refs.Load()
		if n < 0 {
			return false
		}
		if e.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// New returns a registry that makes the value for a new key with newValue,
// keeps at most max keys that are not in use, and drops values idle for
// longer than idle. newValue must not call into the registry. New panics if
// max < 1 or idle <= 0: the caller validates its options first.
func New[V any](max int, idle time.Duration, newValue func(key string) V) *Registry[V] {
	if max < 1 || idle <= 0 || newValue == nil {
		panic("keyed: New: invalid arguments")
	}
	return &Registry[V]{
		newValue: newValue,
		max:      max,
		idle:     idle,
		now:      time.Now,
	}
}

// MaxKeyLen bounds the length of a key as the registry stores it. Keys can
// come from clients (a tenant in gRPC metadata, keyed by a server-side rate
// limit): a longer key is stored as its SHA-256, so that memory stays
// bounded by the number of keys whatever their size.
const MaxKeyLen = 256

// boundKey returns key, or its digest when it is longer than MaxKeyLen.
func boundKey(key string) string {
	if len(key) <= MaxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Acquire returns the entry for key, making it if needed, and marks it in
// use until [Registry.Release]. A key longer than [MaxKeyLen] is stored,
// and given to newValue, as its digest.
func (r *Registry[V]) Acquire(key string) *Entry[V] {
	key = boundKey(key)
	if v, ok := r.m.Load(key); ok {
		if e := v.(*Entry[V]); e.ref() {
			return e
		}
	}
	return r.acquireSlow(key)
}

func (r *Registry[V]) acquireSlow(key string) *Entry[V] {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	// Entries in m are never evicted while mu is held, so one found here
	// can be taken.
	if v, ok := r.m.Load(key); ok {
		if e := v.(*Entry[V]); e.ref() {
			return e
		}
	}
	if !now.Before(r.nextSweep) {
		r.sweepLocked(now.UnixNano())
		r.nextSweep = now.Add(r.idle / 8)
	}
	if int(r.size.Load()) >= r.max {
		r.trimLocked(r.max - max(r.max/10, 1))
	}
	e := &Entry[V]{Value: r.newValue(key), key: key, reg: r}
	e.refs.Store(1)
	e.last.Store(r.tick.Add(1))
	r.m.Store(key, e)
	r.size.Add(1)
	return e
}

// Release ends one use of e, acquired from r. It must be called exactly
// once per Acquire. When the registry grew past its maximum while every
// value was in use, the release that makes room brings it back.
func (r *Registry[V]) Release(e *Entry[V]) {
	if t := r.tick.Load(); e.last.Load() != t {
		e.last.Store(t) // a write only when the tick moved: calls on one key from many cores share the line
	}
	if e.refs.Add(-1) == 0 && int(r.size.Load()) > r.max {
		r.mu.Lock()
		r.trimLocked(r.max)
		r.mu.Unlock()
	}
}

// trimLocked drops the least recently released idle entries until at most
// n remain, or none is idle.
func (r *Registry[V]) trimLocked(n int) {
	excess := int(r.size.Load()) - n
	if excess <= 0 {
		return
	}
	type seen struct {
		last int64
		e    *Entry[V]
	}
	var idle []seen
	r.m.Range(func(_, v any) bool {
		if e := v.(*Entry[V]); e.refs.Load() == 0 {
			idle = append(idle, seen{e.last.Load(), e})
		}
		return true
	})
	slices.SortFunc(idle, func(a, b seen) int { return cmp.Compare(a.last, b.last) })
	for _, s := range idle {
		if excess == 0 {
			return
		}
		if r.removeLocked(s.e) {
			excess--
		}
	}
}

// sweepLocked drops the entries that have been idle for longer than the
// idle timeout, as far as the sweeps can tell (see the package comment).
func (r *Registry[V]) sweepLocked(now int64) {
	r.m.Range(func(_, v any) bool {
		e := v.(*Entry[V])
		if e.refs.Load() != 0 {
			return true
		}
		// A sweep runs just before a new key is made, which moves the
		// tick on, so a release after the sweep that noted idleSince
		// copied a later tick: an unchanged tick means no release since.
		if last := e.last.Load(); e.idleSince == 0 || last != e.sweptTick {
			e.sweptTick, e.idleSince = last, now
			return true
		}
		if now-e.idleSince > int64(r.idle) {
			r.removeLocked(e)
		}
		return true
	})
}

// removeLocked drops e if it is idle, and reports whether it did.
func (r *Registry[V]) removeLocked(e *Entry[V]) bool {
	if !e.refs.CompareAndSwap(0, -1) {
		return false // taken again since it was seen idle
	}
	r.m.Delete(e.key)
	r.size.Add(-1)
	// Telemetry state kept per key lives in the value and is read through
	// Each, so it is dropped with it.
	return true
}

// Peek returns the value for key without making it or marking it used.
func (r *Registry[V]) Peek(key string) (v V, ok bool) {
	if e, found := r.m.Load(boundKey(key)); found {
		return e.(*Entry[V]).Value, true
	}
	return v, false
}

// Each calls f for every key that holds a value. f must be quick and must
// not call into the registry. Observable instruments read per-key state
// through it, so that a key's telemetry goes with the key when it is
// evicted.
func (r *Registry[V]) Each(f func(key string, v V)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m.Range(func(k, v any) bool {
		f(k.(string), v.(*Entry[V]).Value)
		return true
	})
}

// Len returns the number of keys that hold a value.
func (r *Registry[V]) Len() int { return int(r.size.Load()) }

// Do runs op under the value for key, as run(value, ctx, op), and keeps the
// key in use until op's result is done: when op returns, or, for a result
// held past it (resilience.Hold), when that result ends. A key in use is
// never evicted, so the value that holds resources for the result (a
// bulkhead slot, a breaker's pending outcome) outlives it. run is meant to
// be a method expression such as (*Bulkhead).Do, which costs no allocation.
func (r *Registry[V]) Do(ctx context.Context, key string, op func(context.Context) error,
	run func(V, context.Context, func(context.Context) error) error) error {
	e := r.Acquire(key)
	released := false
	defer func() {
		if !released { // op panicked
			r.Release(e)
		}
	}()
	err := run(e.Value, ctx, op)
	released = true
	if resilience.Held(ctx) {
		resilience.DeferRelease(ctx, e)
	} else {
		r.Release(e)
	}
	return err
}
