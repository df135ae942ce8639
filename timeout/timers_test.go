package timeout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// TestNoTimerLeftArmed checks, for every way a call can end, that the
// policy's timer is stopped or has fired once the call and its held result
// are done.
func TestNoTimerLeftArmed(t *testing.T) {
	var timers []*time.Timer
	afterFunc = func(d time.Duration, f func()) *time.Timer {
		tm := time.AfterFunc(d, f)
		timers = append(timers, tm)
		return tm
	}
	defer func() { afterFunc = time.AfterFunc }()

	boom := errors.New("boom")
	call := func() context.Context { return resilience.WithCall(context.Background(), resilience.Call{}) }
	attempt := func() context.Context { ctx, _ := resilience.StartAttempt(call(), 1); return ctx }
	hold := func(ctx context.Context) error {
		done := resilience.Hold(ctx, nil)
		defer done(nil)
		return nil
	}
	tests := []struct {
		name string
		ctx  context.Context
		op   func(context.Context) error
	}{
		{"success", context.Background(), func(context.Context) error { return nil }},
		{"failure", context.Background(), func(context.Context) error { return boom }},
		{"expired", context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{"held in an attempt", attempt(), hold},
		{"held by the call", call(), hold},
	}
	for _, tt := range tests {
		timers = timers[:0]
		New(50*time.Millisecond).Do(tt.ctx, tt.op)
		// Results held here end when the op's deferred done runs, which
		// is before Do returns; a result that ends later is covered by
		// the release deferred with resilience.Defer.
		if len(timers) != 1 {
			t.Fatalf("%s: %d timers armed, want 1", tt.name, len(timers))
		}
		if timers[0].Stop() {
			t.Errorf("%s: the timer was still armed after the call ended", tt.name)
		}
	}
}

func TestNoTimerLeftArmedAfterHeldResultEnds(t *testing.T) {
	var timers []*time.Timer
	afterFunc = func(d time.Duration, f func()) *time.Timer {
		tm := time.AfterFunc(d, f)
		timers = append(timers, tm)
		return tm
	}
	defer func() { afterFunc = time.AfterFunc }()
	for _, inAttempt := range []bool{false, true} {
		timers = timers[:0]
		ctx := resilience.WithCall(context.Background(), resilience.Call{})
		if inAttempt {
			ctx, _ = resilience.StartAttempt(ctx, 1)
		}
		var done func(error)
		New(time.Hour).Do(ctx, func(ctx context.Context) error {
			done = resilience.Hold(ctx, nil)
			return nil
		})
		done(nil) // the body is closed after Do returned
		if timers[0].Stop() {
			t.Errorf("in attempt %v: the timer was still armed after the held result ended", inAttempt)
		}
	}
}
