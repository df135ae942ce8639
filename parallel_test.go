package resilience_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/resilience-go/resilience"
)

func TestParallelAttempts(t *testing.T) {
	call := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true})
	if resilience.Parallel(call) {
		t.Fatal("a call is not a parallel attempt")
	}
	seq, _ := resilience.StartAttempt(call, 1)
	if resilience.Parallel(seq) {
		t.Fatal("StartAttempt started a parallel attempt")
	}
	par, _ := resilience.StartParallelAttempt(call, 1)
	inner, _ := resilience.StartAttempt(par, 1)
	if !resilience.Parallel(par) || !resilience.Parallel(inner) {
		t.Fatal("a parallel attempt, and an attempt inside one, must be parallel")
	}
	if resilience.Parallel(context.Background()) {
		t.Fatal("outside any call nothing is parallel")
	}
}

func TestOnKeepPublishesOnlyTheKeptAttempt(t *testing.T) {
	call := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true})
	var (
		mu        sync.Mutex
		published []int
	)
	var ats []resilience.Attempt
	var wg sync.WaitGroup
	for n := 1; n <= 3; n++ {
		actx, at := resilience.StartParallelAttempt(call, n)
		ats = append(ats, at)
		wg.Go(func() {
			resilience.OnKeep(actx, func() {
				mu.Lock()
				published = append(published, n)
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	if len(published) != 0 {
		t.Fatalf("published %v before any attempt was kept", published)
	}
	ats[0].Discard()
	ats[2].Discard()
	ats[1].Keep()
	ats[1].Keep() // a second Keep publishes nothing more
	if !slices.Equal(published, []int{2}) {
		t.Fatalf("published %v, want only the kept attempt [2]", published)
	}
}

func TestOnKeepWaitsForTheOutermostParallelAttempt(t *testing.T) {
	call := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true})
	outer, outerAt := resilience.StartParallelAttempt(call, 1)
	inner, innerAt := resilience.StartAttempt(outer, 1) // a retry inside a hedge
	published := 0
	resilience.OnKeep(inner, func() { published++ })
	innerAt.Keep()
	if published != 0 {
		t.Fatal("published when the inner attempt was kept, before the hedge kept its attempt")
	}
	outerAt.Keep()
	if published != 1 {
		t.Fatalf("published %d times once the outer attempt was kept, want 1", published)
	}

	// Discarding the outer attempt drops what the inner one handed over.
	outer, outerAt = resilience.StartParallelAttempt(call, 2)
	inner, innerAt = resilience.StartAttempt(outer, 1)
	resilience.OnKeep(inner, func() { published++ })
	innerAt.Keep()
	outerAt.Discard()
	outerAt.Keep()
	if published != 1 {
		t.Fatal("a discarded attempt's result was published")
	}
}

func TestOnKeepOutsideParallelRunsAtOnce(t *testing.T) {
	for _, ctx := range []context.Context{
		context.Background(),
		resilience.WithCall(context.Background(), resilience.Call{}),
	} {
		ran := false
		resilience.OnKeep(ctx, func() { ran = true })
		if !ran {
			t.Fatal("OnKeep outside a parallel attempt must run at once")
		}
	}
	actx, _ := resilience.StartAttempt(resilience.WithCall(context.Background(), resilience.Call{}), 1)
	ran := false
	resilience.OnKeep(actx, func() { ran = true })
	if !ran {
		t.Fatal("OnKeep in a sequential attempt must run at once")
	}
}
