package idempotency

import (
	"context"
	"errors"
	"time"
)

// A Store keeps the reservations and records of a [Guard]. It is small on
// purpose: four operations, each atomic on its own. Keys given to a Store
// are already scoped and hashed by the Guard (64 hexadecimal digits), so a
// Store never sees a client's raw key.
//
// A reservation is held under a fencing token that grows with each new
// reservation of a key: [Store.Complete] and [Store.Release] act only while
// the caller's token is the key's current one and its lease has not run
// out, so a holder that outlived its lease cannot overwrite or drop the
// reservation of the request that took the key over.
//
// Implementations in this module: [MemoryStore], for one process, and
// package redisstore, shared by every instance of a service.
type Store interface {
	// Reserve claims key for a request whose fingerprint is fingerprint,
	// for lease. If the key is free (never used, released, expired, or
	// held by a reservation whose lease ran out) it reserves it and
	// returns reserved true and the new reservation's Token. Otherwise it
	// returns what holds the key: a reservation in flight (with what is
	// left of its lease, Entry.LeaseLeft), or a completed record (Done).
	Reserve(ctx context.Context, key, fingerprint string, lease time.Duration) (e Entry, reserved bool, err error)
	// Complete replaces the reservation held with token by a record of
	// response, kept for ttl. It returns [ErrLeaseLost] if token no
	// longer holds the key. If it cannot keep the record (too large, out
	// of memory, a failure), it returns an error and leaves the
	// reservation as it was, holding the key until its lease runs out:
	// the request ran, and a retry must not run it again at once.
	Complete(ctx context.Context, key string, token uint64, response []byte, ttl time.Duration) error
	// Release frees the key held with token, so that the next request with
	// it runs. It returns [ErrLeaseLost] if token no longer holds the key.
	Release(ctx context.Context, key string, token uint64) error
	// Get returns what holds key; ok is false when nothing does.
	Get(ctx context.Context, key string) (e Entry, ok bool, err error)
}

// An Entry is what holds a key in a [Store]: a reservation in flight, or,
// once Done, the record of its response.
type Entry struct {
	// Fingerprint identifies the request that reserved the key.
	Fingerprint string
	// Token is the reservation's fencing token.
	Token uint64
	// Done reports that the request completed and Response is its record.
	Done bool
	// Response is the record, as the Guard's caller encoded it.
	Response []byte
	// LeaseLeft is, for a reservation in flight (not Done), how long its
	// lease had left when the Store answered. The stores of this module
	// report it; a Store that does not leaves it zero, and the Guard then
	// advises retrying after one second.
	LeaseLeft time.Duration
}

// ErrLeaseLost is returned by [Store.Complete] and [Store.Release] when the
// caller's reservation no longer holds the key: its lease ran out, and
// perhaps another request reserved the key since.
var ErrLeaseLost = errors.New("idempotency: reservation lost (lease expired or key taken over)")
