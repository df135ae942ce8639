// Package keyed holds one value per key in a bounded registry that forgets
// idle keys. The keyed variants of breaker, bulkhead and ratelimit share it,
// so that a client talking to a million distinct hosts keeps at most a fixed
// number of per-host instances.
//
// A value is in use between [Registry.Acquire] and the matching
// [Registry.Release]; a value in use is never evicted, so that a bulkhead's
// slots or a breaker's outcome bookkeeping stay with the calls that took
// them. Idle values are kept in least-recently-used order. Whenever a key is
// acquired, values idle for longer than the idle timeout are dropped, and
// when a new key would exceed the maximum, the least recently used idle
// values are dropped to make room. If every value is in use the registry
// grows past its maximum by at most the number of keys with calls in
// flight, and shrinks back to the maximum as they end: a key released while
// the registry is over its maximum drops the least recently used idle
// values until it is not. No goroutine is started.
package keyed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
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

	mu sync.Mutex // guards the fields below; newValue runs under it and must not call back
	m  map[string]*Entry[V]
	// lru lists the entries not in use, most recently released first;
	// entries in use are not on it.
	head, tail *Entry[V]
}

// Entry is a registry's value for one key.
type Entry[V any] struct {
	Value V

	key        string
	refs       int       // calls using the entry; guarded by Registry.mu
	last       time.Time // when refs last dropped to zero
	prev, next *Entry[V] // in the idle list, while refs == 0
}

// Key returns the entry's key.
func (e *Entry[V]) Key() string { return e.key }

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
		m:        make(map[string]*Entry[V]),
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
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evictIdle(now)
	e, ok := r.m[key]
	if !ok {
		for len(r.m) >= r.max && r.tail != nil {
			r.remove(r.tail)
		}
		e = &Entry[V]{Value: r.newValue(key), key: key}
		r.m[key] = e
	} else if e.refs == 0 {
		r.unlink(e)
	}
	e.refs++
	return e
}

// Release ends one use of e, acquired from r. It must be called exactly
// once per Acquire.
func (r *Registry[V]) Release(e *Entry[V]) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e.refs--
	if e.refs > 0 {
		return
	}
	e.last = now
	if r.m[e.key] != e {
		// Cannot happen: entries in use are never evicted.
		return
	}
	e.next = r.head
	if r.head != nil {
		r.head.prev = e
	}
	r.head = e
	if r.tail == nil {
		r.tail = e
	}
	// After a burst of keys in use at once, shrink back to the bound.
	for len(r.m) > r.max && r.tail != nil {
		r.remove(r.tail)
	}
}

// Peek returns the value for key without making it or marking it used.
func (r *Registry[V]) Peek(key string) (v V, ok bool) {
	key = boundKey(key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[key]; ok {
		return e.Value, true
	}
	return v, false
}

// Each calls f for every key that holds a value, under the registry's lock:
// f must be quick and must not call into the registry. Observable
// instruments read per-key state through it, so that a key's telemetry
// goes with the key when it is evicted.
func (r *Registry[V]) Each(f func(key string, v V)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.m {
		f(k, e.Value)
	}
}

// Len returns the number of keys that hold a value.
func (r *Registry[V]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// evictIdle drops the entries idle for longer than r.idle, oldest first.
func (r *Registry[V]) evictIdle(now time.Time) {
	for r.tail != nil && now.Sub(r.tail.last) > r.idle {
		r.remove(r.tail)
	}
}

// remove drops an idle entry.
func (r *Registry[V]) remove(e *Entry[V]) {
	r.unlink(e)
	delete(r.m, e.key)
	// Telemetry state kept per key lives in the value and is read through
	// Each, so it is dropped with it.
}

func (r *Registry[V]) unlink(e *Entry[V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		r.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

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
		resilience.Defer(ctx, func(error) { r.Release(e) })
	} else {
		r.Release(e)
	}
	return err
}
