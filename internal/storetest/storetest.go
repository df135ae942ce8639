// Package storetest checks that an idempotency.Store keeps the contract the
// Guard relies on: reservations, fencing tokens, leases, records and TTLs.
// The memory store's tests and the Redis store's run it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/resilience-go/resilience/idempotency"
)

// Run checks s. sleep waits for d to pass as s sees time (time.Sleep in a
// synctest bubble for the memory store, a little more than d for Redis).
// Keys are prefixed with prefix, so that runs may share a store.
func Run(t *testing.T, s idempotency.Store, prefix string, sleep func(d time.Duration)) {
	ctx := context.Background()
	const lease = 100 * time.Millisecond
	k := func(name string) string { return prefix + name }

	// A fingerprint and a response with the bytes an encoding might trip
	// on.
	fp := "fp:1\x00:"
	resp := []byte("0:1:\x00\xff\nbody")

	e, ok, err := s.Reserve(ctx, k("a"), fp, time.Minute)
	if err != nil || !ok || e.Token == 0 || e.Fingerprint != fp {
		t.Fatalf("first Reserve: got %+v, %v, %v; want a reservation with a token", e, ok, err)
	}
	t1 := e.Token
	e, ok, err = s.Reserve(ctx, k("a"), "other", time.Minute)
	if err != nil || ok || e.Done || e.Fingerprint != fp || e.Token != t1 {
		t.Fatalf("Reserve in flight: got %+v, %v, %v; want the first reservation", e, ok, err)
	}
	if e.LeaseLeft <= 0 || e.LeaseLeft > time.Minute {
		t.Fatalf("Reserve in flight: LeaseLeft %v, want what is left of the 1m lease", e.LeaseLeft)
	}
	if e, ok, err := s.Get(ctx, k("a")); err != nil || !ok || e.Done || e.LeaseLeft <= 0 || e.LeaseLeft > time.Minute {
		t.Fatalf("Get in flight: got %+v, %v, %v; want the reservation with what is left of its lease", e, ok, err)
	}
	if err := s.Complete(ctx, k("a"), t1+1, resp, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("Complete with another token: got %v, want ErrLeaseLost", err)
	}
	if err := s.Release(ctx, k("a"), t1+1); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("Release with another token: got %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, k("a"), t1, resp, time.Hour); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	for _, f := range []func() (idempotency.Entry, bool, error){
		func() (idempotency.Entry, bool, error) { return s.Get(ctx, k("a")) },
		func() (idempotency.Entry, bool, error) {
			e, reserved, err := s.Reserve(ctx, k("a"), fp, time.Minute)
			return e, !reserved, err
		},
	} {
		e, ok, err := f()
		if err != nil || !ok || !e.Done || e.Fingerprint != fp || !bytes.Equal(e.Response, resp) {
			t.Fatalf("after Complete: got %+v, %v, %v; want the record", e, ok, err)
		}
	}
	if err := s.Release(ctx, k("a"), t1); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("Release of a record: got %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, k("a"), t1, []byte("again"), time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("second Complete: got %v, want ErrLeaseLost", err)
	}

	// Release frees the key; the next reservation has a newer token.
	e, _, _ = s.Reserve(ctx, k("b"), fp, time.Minute)
	if err := s.Release(ctx, k("b"), e.Token); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, ok, err := s.Get(ctx, k("b")); ok || err != nil {
		t.Fatalf("Get after Release: got %v, %v; want nothing", ok, err)
	}
	e2, ok, err := s.Reserve(ctx, k("b"), "new", time.Minute)
	if err != nil || !ok || e2.Token <= e.Token {
		t.Fatalf("Reserve after Release: got %+v, %v, %v; want a newer token than %d", e2, ok, err, e.Token)
	}

	// A holder whose lease ran out cannot complete or release over the
	// request that took the key over: fencing.
	old, _, _ := s.Reserve(ctx, k("c"), fp, lease)
	sleep(lease)
	cur, ok, err := s.Reserve(ctx, k("c"), fp, time.Minute)
	if err != nil || !ok || cur.Token <= old.Token {
		t.Fatalf("Reserve after the lease ran out: got %+v, %v, %v; want a newer reservation than %d", cur, ok, err, old.Token)
	}
	if err := s.Complete(ctx, k("c"), old.Token, []byte("late"), time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("late Complete: got %v, want ErrLeaseLost", err)
	}
	if err := s.Release(ctx, k("c"), old.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("late Release: got %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, k("c"), cur.Token, []byte("current"), time.Hour); err != nil {
		t.Fatalf("Complete by the current holder: %v", err)
	}
	if e, _, _ := s.Get(ctx, k("c")); string(e.Response) != "current" {
		t.Fatalf("record: got %q, want the current holder's", e.Response)
	}

	// A holder whose lease ran out, with nobody after it, cannot record
	// either: it no longer holds the key.
	old, _, _ = s.Reserve(ctx, k("d"), fp, lease)
	sleep(lease)
	if err := s.Complete(ctx, k("d"), old.Token, []byte("late"), time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("Complete after the lease: got %v, want ErrLeaseLost", err)
	}

	// Records expire.
	e, _, _ = s.Reserve(ctx, k("e"), fp, time.Minute)
	if err := s.Complete(ctx, k("e"), e.Token, resp, lease); err != nil {
		t.Fatal(err)
	}
	sleep(lease)
	if _, ok, err := s.Get(ctx, k("e")); ok || err != nil {
		t.Fatalf("Get after the TTL: got %v, %v; want nothing", ok, err)
	}

	// A canceled context fails.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Reserve(cctx, k("f"), fp, time.Minute); err == nil {
		t.Fatal("Reserve with a canceled context: no error")
	}
}

// RefusedRecord checks that a record the store refuses (too large for a
// bounded store, Redis out of memory) leaves the key reserved until its
// lease runs out, as the Guard's documentation promises: a retry within the
// lease finds the reservation in flight and does not run again; one after
// it runs. refuse makes s refuse the next Complete of response and returns
// what undoes that. sleep is as for [Run].
func RefusedRecord(t *testing.T, s idempotency.Store, key string, response []byte, refuse func() (undo func()), sleep func(d time.Duration)) {
	t.Helper()
	ctx := context.Background()
	const lease = 100 * time.Millisecond
	e, ok, err := s.Reserve(ctx, key, "fp", lease)
	if err != nil || !ok {
		t.Fatalf("Reserve: got %v, %v; want a reservation", ok, err)
	}
	undo := refuse()
	err = s.Complete(ctx, key, e.Token, response, time.Hour)
	undo()
	if err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("Complete of a refused record: got %v, want the store's error", err)
	}
	got, ok, err := s.Get(ctx, key)
	if err != nil || !ok || got.Done || got.Token != e.Token {
		t.Fatalf("Get after a refused record: got %+v, %v, %v; want the reservation still held", got, ok, err)
	}
	if _, reserved, err := s.Reserve(ctx, key, "fp", lease); reserved || err != nil {
		t.Fatalf("Reserve within the lease: got %v, %v; want the reservation in flight", reserved, err)
	}
	sleep(lease)
	if _, reserved, err := s.Reserve(ctx, key, "fp", lease); !reserved || err != nil {
		t.Fatalf("Reserve after the lease: got %v, %v; want a new reservation", reserved, err)
	}
}
