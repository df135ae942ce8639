package retry_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/retry"
)

// TestNoAttemptAfterTheDeadline makes the backoff timer and the context's
// deadline end at the same instant, many times over: select picks either,
// and whichever it picks, no attempt may start.
func TestNoAttemptAfterTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for i := range 200 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			dl, _ := ctx.Deadline()
			p := retry.New(
				retry.WithBackoff(100*time.Millisecond, 100*time.Millisecond),
				retry.WithJitter(0),
				// The caller's goroutine is delayed after scheduling the
				// retry (as a starved process would be), so that the
				// 100ms wait ends exactly at the deadline.
				retry.WithOnRetry(func(context.Context, retry.Event) { time.Sleep(900 * time.Millisecond) }),
			)
			calls, late := 0, 0
			err := p.Do(ctx, func(ctx context.Context) error {
				calls++
				if !time.Now().Before(dl) || ctx.Err() != nil {
					late++
				}
				return errFlaky
			})
			cancel()
			if late != 0 || calls != 1 {
				t.Fatalf("run %d: %d attempts, %d of them at or after the deadline; want 1 and 0", i, calls, late)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("run %d: got %v, want the context's DeadlineExceeded", i, err)
			}
		}
	})
}

func TestTooLateForAnotherAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p := retry.New(
			retry.WithBackoff(100*time.Millisecond, 100*time.Millisecond),
			retry.WithJitter(0),
			// The wait ends 5ms before the deadline, under the default
			// minimum of 10ms.
			retry.WithOnRetry(func(context.Context, retry.Event) { time.Sleep(895 * time.Millisecond) }),
		)
		calls := 0
		err := p.Do(ctx, failing(10, errFlaky, &calls))
		var re *retry.Error
		if !errors.As(err, &re) || re.Reason != retry.ErrTooLate || re.Attempts != 1 || !errors.Is(err, errFlaky) {
			t.Fatalf("got %v, want *retry.Error{Attempts: 1, Reason: ErrTooLate} wrapping the last error", err)
		}
		if calls != 1 {
			t.Fatalf("got %d attempts, want 1", calls)
		}
	})
}

func TestMinAttemptTimeBoundsTheWait(t *testing.T) {
	tests := []struct {
		name      string
		min       time.Duration // < 0: default
		wantCalls int
	}{
		{"default 10ms: a wait ending 5ms before the deadline is not started", -1, 1},
		{"zero: only the deadline itself counts", 0, 2},
		{"100ms", 100 * time.Millisecond, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				opts := []retry.Option{retry.WithMaxAttempts(2), retry.WithBackoff(995*time.Millisecond, time.Second), retry.WithJitter(0)}
				if tt.min >= 0 {
					opts = append(opts, retry.WithMinAttemptTime(tt.min))
				}
				calls := 0
				err := retry.New(opts...).Do(ctx, failing(10, errFlaky, &calls))
				if calls != tt.wantCalls {
					t.Fatalf("got %d attempts (%v), want %d", calls, err, tt.wantCalls)
				}
				if tt.wantCalls == 1 && !errors.Is(err, retry.ErrDeadline) {
					t.Fatalf("got %v, want ErrDeadline", err)
				}
			})
		})
	}
}

// lateCtx reports a deadline that has passed while its Err is still nil, as
// a context whose timer has not fired yet on a starved machine does.
type lateCtx struct {
	context.Context
	dl time.Time
}

func (c lateCtx) Deadline() (time.Time, bool) { return c.dl, true }

func TestFirstAttemptNeedsALiveContext(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	notFired := lateCtx{context.Background(), time.Now().Add(-time.Millisecond)}
	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"canceled", canceled, context.Canceled},
		{"deadline passed", expired, context.DeadlineExceeded},
		{"deadline passed, context not told yet", notFired, context.DeadlineExceeded},
		{"not idempotent, canceled", resilience.WithCall(canceled, resilience.Call{Target: "h"}), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := retry.New().Do(tt.ctx, func(context.Context) error { calls++; return nil })
			if calls != 0 || err != tt.want {
				t.Fatalf("got %d calls and %v, want 0 calls and %v", calls, err, tt.want)
			}
		})
	}
}

// A breaker that fails fast marks its rejection with a kind that is not
// retryable, and may still say when its next probe is due: retry must
// return at once, without waiting for it.
func TestNonRetryableKindsStopAtOnceWhateverTheirDelay(t *testing.T) {
	base := errors.New("turned away")
	kinds := []resilience.Kind{
		resilience.KindPermanent,
		resilience.KindRejected,
		resilience.KindCanceled,
		resilience.KindCanceled + 1, // a kind the root may add later
	}
	for _, k := range kinds {
		synctest.Test(t, func(t *testing.T) {
			want := resilience.MarkRetryAfter(base, k, 5*time.Second)
			calls := 0
			start := time.Now()
			err := retry.New().Do(context.Background(), func(context.Context) error { calls++; return want })
			if err != want || calls != 1 || time.Since(start) != 0 {
				t.Fatalf("kind %v: got %d calls, %v after %v; want 1 call, the error unchanged, at once", k, calls, err, time.Since(start))
			}
		})
	}
}

func TestRetryAfterHonouredOnlyOnRetryableKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev retry.Event
		p := retry.New(
			retry.WithMaxAttempts(2),
			retry.WithBackoff(100*time.Millisecond, 10*time.Second),
			retry.WithJitter(0),
			retry.WithRetryIf(func(error) bool { return true }),
			retry.WithOnRetry(func(_ context.Context, e retry.Event) { ev = e }),
		)
		calls := 0
		p.Do(context.Background(), func(context.Context) error {
			if calls++; calls == 1 {
				return resilience.MarkRetryAfter(errFlaky, resilience.KindRejected, 5*time.Second)
			}
			return nil
		})
		if ev.Wait != 100*time.Millisecond || ev.Pushback {
			t.Fatalf("a rejected failure retried by a custom test waited %v (pushback %v), want the backoff's 100ms", ev.Wait, ev.Pushback)
		}
	})
}
