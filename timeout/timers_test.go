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
	// An operation that never waits on its context arms no timer.
	tests := []struct {
		name   string
		ctx    context.Context
		op     func(context.Context) error
		timers int
	}{
		{"success", context.Background(), func(context.Context) error { return nil }, 0},
		{"failure", context.Background(), func(context.Context) error { return boom }, 0},
		{"asks Err", context.Background(), func(ctx context.Context) error { return ctx.Err() }, 0},
		{"waits on Done", context.Background(), func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			default:
				return nil
			}
		}, 1},
		{"expired", context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, 1},
		{"held in an attempt", attempt(), hold, 1},
		{"held by the call", call(), hold, 1},
	}
	for _, tt := range tests {
		timers = timers[:0]
		New(50*time.Millisecond).Do(tt.ctx, tt.op)
		// Results held here end when the op's deferred done runs, which
		// is before Do returns; a result that ends later is covered by
		// the release deferred with resilience.Defer.
		if len(timers) != tt.timers {
			t.Fatalf("%s: %d timers armed, want %d", tt.name, len(timers), tt.timers)
		}
		for _, tm := range timers {
			if tm.Stop() {
				t.Errorf("%s: the timer was still armed after the call ended", tt.name)
			}
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
