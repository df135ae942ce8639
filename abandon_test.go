package resilience_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/resilience-go/resilience"
)

// A held result whose context ends is released, and its outcome is the
// caller's (not counted), whether or not anyone ever closes it.
func TestHeldResultReleasedWhenContextEnds(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cause error
	}{
		{"caller canceled", context.Canceled},
		{"total timeout", context.DeadlineExceeded},
	} {
		synctest.Test(t, func(t *testing.T) {
			parent, cancel := context.WithCancelCause(t.Context())
			ctx := resilience.WithCall(parent, resilience.Call{Idempotent: true})
			actx, at := resilience.StartAttempt(ctx, 1)
			discarded := false
			done := resilience.Hold(actx, func() { discarded = true })
			var got error
			released := 0
			resilience.Defer(actx, func(err error) { released++; got = err })
			at.Keep()
			resilience.Defer(ctx, func(error) { released++ })
			cancel(tt.cause)
			synctest.Wait()
			if released != 2 {
				t.Fatalf("%s: %d releases ran, want 2", tt.name, released)
			}
			if !errors.Is(got, resilience.ErrAbandoned) || !errors.Is(got, tt.cause) {
				t.Errorf("%s: final error %v, want ErrAbandoned and %v", tt.name, got, tt.cause)
			}
			if k := resilience.Classify(got); k != resilience.KindCanceled {
				t.Errorf("%s: final error classified %v, want canceled (not counted)", tt.name, k)
			}
			if discarded {
				t.Errorf("%s: discard ran; the context's end already frees the result", tt.name)
			}
			done(nil) // a late close changes nothing
			if released != 2 {
				t.Errorf("%s: releases ran again", tt.name)
			}
		})
	}
}

// A result done in time leaves no registration behind.
func TestHeldResultDoneInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(t.Context())
		ctx := resilience.WithCall(parent, resilience.Call{})
		done := resilience.Hold(ctx, nil)
		var got []error
		resilience.Defer(ctx, func(err error) { got = append(got, err) })
		done(nil)
		cancel()
		synctest.Wait()
		if len(got) != 1 || got[0] != nil {
			t.Fatalf("releases got %v, want one nil", got)
		}
	})
}

// A result abandoned (its context ended) before a policy discarded it is
// still freed when the policy discards it: a hedge's losing body is closed.
func TestAbandonedResultDiscardedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(t.Context())
		ctx := resilience.WithCall(parent, resilience.Call{Idempotent: true})
		actx, at := resilience.StartAttempt(ctx, 1)
		discards := 0
		resilience.Hold(actx, func() { discards++ })
		cancel()
		synctest.Wait()
		if discards != 0 {
			t.Fatalf("discard ran %d times on abandonment, want 0 (the context's end frees the result)", discards)
		}
		at.Discard()
		at.Discard()
		if discards != 1 {
			t.Fatalf("discard ran %d times after Discard, want 1", discards)
		}
	})
}
