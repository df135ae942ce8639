package retry_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errFlaky = errors.New("flaky")

// failing returns an op that fails n times with err, then succeeds, and
// counts its calls.
func failing(n int, err error, calls *int) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= n {
			return err
		}
		return nil
	}
}

func TestRetriesTransientThenSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for n := range 4 {
			calls := 0
			err := retry.New().Do(context.Background(), failing(n, errFlaky, &calls))
			if err != nil || calls != n+1 {
				t.Errorf("%d failures: got %d calls and %v, want %d calls and nil", n, calls, err, n+1)
			}
		}
	})
}

func TestExhaustedErrorWrapsLastCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		last := resilience.Mark(errors.New("last"), resilience.KindTransient)
		err := retry.New(retry.WithMaxAttempts(3)).Do(context.Background(), func(context.Context) error {
			calls++
			if calls == 3 {
				return last
			}
			return errFlaky
		})
		var re *retry.Error
		if !errors.As(err, &re) {
			t.Fatalf("got %v, want *retry.Error", err)
		}
		if re.Attempts != 3 || calls != 3 || !errors.Is(err, retry.ErrExhausted) || !errors.Is(err, last) {
			t.Fatalf("got %+v after %d calls, want 3 attempts, ErrExhausted, wrapping the last cause", re, calls)
		}
		if want := "retry: gave up after 3 attempts (attempts exhausted): last"; err.Error() != want {
			t.Errorf("message %q, want %q", err.Error(), want)
		}
		if resilience.Classify(err) != resilience.KindTransient {
			t.Errorf("the exhausted error must keep the last cause's kind")
		}
	})
}

func TestNotRetried(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		name string
		err  error
	}{
		{"permanent", resilience.Mark(base, resilience.KindPermanent)},
		{"rejected", resilience.Mark(base, resilience.KindRejected)},
		{"canceled", context.Canceled},
	}
	for _, tt := range tests {
		calls := 0
		err := retry.New().Do(context.Background(), failing(10, tt.err, &calls))
		if calls != 1 || err != tt.err {
			t.Errorf("%s: got %d calls and %v, want 1 call and the error unchanged", tt.name, calls, err)
		}
	}
}

func TestNonIdempotentCallIsSentOnce(t *testing.T) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{Method: "POST", Idempotent: false})
	calls := 0
	err := retry.New().Do(ctx, failing(10, errFlaky, &calls))
	if calls != 1 || err != errFlaky {
		t.Fatalf("got %d calls and %v, want 1 call and the error unchanged", calls, err)
	}
	// Whatever the classifier says.
	calls = 0
	retry.New(retry.WithRetryIf(func(error) bool { return true })).Do(ctx, failing(10, errFlaky, &calls))
	if calls != 1 {
		t.Fatalf("WithRetryIf retried a non-idempotent call: %d calls", calls)
	}
}

func TestNoRetryReason(t *testing.T) {
	reason := errors.New("body cannot be replayed")
	ctx := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true, NoRetry: reason})
	calls := 0
	err := retry.New().Do(ctx, failing(10, errFlaky, &calls))
	var re *retry.Error
	if calls != 1 || !errors.As(err, &re) || re.Reason != reason || !errors.Is(err, errFlaky) {
		t.Fatalf("got %d calls and %v, want 1 call and a *retry.Error giving the reason", calls, err)
	}
}

func TestBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waits []time.Duration
		p := retry.New(
			retry.WithMaxAttempts(6),
			retry.WithBackoff(100*time.Millisecond, time.Second),
			retry.WithJitter(0),
			retry.WithOnRetry(func(_ context.Context, e retry.Event) { waits = append(waits, e.Wait) }),
		)
		var at []time.Duration
		start := time.Now()
		p.Do(context.Background(), func(context.Context) error {
			at = append(at, time.Since(start))
			return errFlaky
		})
		ms := time.Millisecond
		if want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second}; !slices.Equal(waits, want) {
			t.Fatalf("scheduled waits %v, want %v", waits, want)
		}
		if want := []time.Duration{0, 100 * ms, 300 * ms, 700 * ms, 1500 * ms, 2500 * ms}; !slices.Equal(at, want) {
			t.Fatalf("attempts started at %v, want %v", at, want)
		}
	})
}

func TestJitterStaysInBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waits []time.Duration
		p := retry.New(
			retry.WithMaxAttempts(2),
			retry.WithBackoff(time.Second, 10*time.Second),
			retry.WithJitter(0.5),
			retry.WithOnRetry(func(_ context.Context, e retry.Event) { waits = append(waits, e.Wait) }),
		)
		for range 200 {
			p.Do(context.Background(), func(context.Context) error { return errFlaky })
		}
		distinct := map[time.Duration]bool{}
		for _, w := range waits {
			if w < 500*time.Millisecond || w > 1500*time.Millisecond {
				t.Fatalf("wait %v outside [0.5s, 1.5s]", w)
			}
			distinct[w] = true
		}
		if len(distinct) < 100 {
			t.Fatalf("only %d distinct waits in 200: jitter is not spreading retries", len(distinct))
		}
	})
}

func TestPushbackWinsButIsCapped(t *testing.T) {
	tests := []struct {
		after, want time.Duration
	}{
		{3 * time.Second, 3 * time.Second},
		{0, 0},
		{time.Hour, 5 * time.Second}, // capped at the max delay
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			var ev retry.Event
			p := retry.New(
				retry.WithMaxAttempts(2),
				retry.WithBackoff(100*time.Millisecond, 5*time.Second),
				retry.WithOnRetry(func(_ context.Context, e retry.Event) { ev = e }),
			)
			start := time.Now()
			var second time.Duration
			calls := 0
			p.Do(context.Background(), func(context.Context) error {
				calls++
				if calls == 2 {
					second = time.Since(start)
					return nil
				}
				return resilience.MarkRetryAfter(errFlaky, resilience.KindThrottled, tt.after)
			})
			if ev.Wait != tt.want || !ev.Pushback || second != tt.want {
				t.Errorf("pushback %v: scheduled %v (pushback %v), second attempt at %v; want %v", tt.after, ev.Wait, ev.Pushback, second, tt.want)
			}
		})
	}
}

func TestCancelDuringWaitStopsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p := retry.New(retry.WithBackoff(time.Minute, time.Minute), retry.WithJitter(0))
		calls := 0
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		err := p.Do(ctx, func(context.Context) error { calls++; return errFlaky })
		if err != context.Canceled {
			t.Fatalf("got %v, want the caller's context.Canceled", err)
		}
		if calls != 1 {
			t.Fatalf("got %d attempts, want 1", calls)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("returned %v after start, want at the cancellation (1s)", d)
		}
	})
}

func TestCancelDuringAttemptIsNotRetried(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := retry.New().Do(ctx, func(ctx context.Context) error {
		calls++
		cancel()
		return errFlaky // the op did not notice; the policy must
	})
	if err != context.Canceled || calls != 1 {
		t.Fatalf("got %d calls and %v, want 1 call and context.Canceled", calls, err)
	}
}

func TestNoWaitPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p := retry.New(retry.WithBackoff(5*time.Second, 5*time.Second), retry.WithJitter(0))
		start := time.Now()
		calls := 0
		err := p.Do(ctx, failing(10, errFlaky, &calls))
		if !errors.Is(err, retry.ErrDeadline) || !errors.Is(err, errFlaky) || calls != 1 {
			t.Fatalf("got %d calls and %v, want 1 call and ErrDeadline wrapping the last error", calls, err)
		}
		if time.Since(start) != 0 {
			t.Fatalf("waited %v for a retry that could not happen", time.Since(start))
		}
	})
}

func TestMaxElapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := retry.New(retry.WithMaxAttempts(100), retry.WithBackoff(time.Second, time.Second),
			retry.WithJitter(0), retry.WithMaxElapsed(3500*time.Millisecond))
		calls := 0
		err := p.Do(context.Background(), failing(100, errFlaky, &calls))
		if !errors.Is(err, retry.ErrMaxElapsed) || calls != 4 {
			t.Fatalf("got %d calls and %v, want 4 calls (at 0s, 1s, 2s, 3s) and ErrMaxElapsed", calls, err)
		}
	})
}

func TestAttemptsAreNumberedAndDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true})
		var (
			numbers   []int
			discarded []int
			released  []int
		)
		err := retry.New().Do(ctx, func(ctx context.Context) error {
			n := resilience.AttemptNumber(ctx)
			numbers = append(numbers, n)
			resilience.Hold(ctx, func() { discarded = append(discarded, n) })
			resilience.Defer(ctx, func(error) { released = append(released, n) })
			if n < 3 {
				return errFlaky
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(numbers, []int{1, 2, 3}) || !slices.Equal(discarded, []int{1, 2}) || !slices.Equal(released, []int{1, 2}) {
			t.Fatalf("numbers %v, discarded %v, released %v; want [1 2 3], [1 2], [1 2]", numbers, discarded, released)
		}
		if !resilience.Held(ctx) {
			t.Fatal("the kept attempt's result must be held by the call")
		}
	})
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		opt  retry.Option
		want string
	}{
		{retry.WithMaxAttempts(0), "retry: WithMaxAttempts"},
		{retry.WithBackoff(0, time.Second), "retry: WithBackoff"},
		{retry.WithBackoff(2*time.Second, time.Second), "retry: WithBackoff"},
		{retry.WithMultiplier(0.5), "retry: WithMultiplier"},
		{retry.WithJitter(1.5), "retry: WithJitter"},
		{retry.WithMaxElapsed(-1), "retry: WithMaxElapsed"},
		{retry.WithRetryIf(nil), "retry: WithRetryIf"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, tt.want) {
					t.Errorf("got panic %q, want one starting %q", msg, tt.want)
				}
			}()
			retry.New(tt.opt)
		}()
	}
}

func TestOptionsAreComparable(t *testing.T) {
	if retry.WithMaxAttempts(3) != retry.WithMaxAttempts(3) || retry.WithBackoff(1, 2) == retry.WithBackoff(1, 3) {
		t.Fatal("value options must compare by value")
	}
}

func TestErrorText(t *testing.T) {
	last := errors.New("last")
	tests := []struct {
		e    *retry.Error
		want string
	}{
		{&retry.Error{Attempts: 4, Reason: retry.ErrExhausted, Err: last}, "retry: gave up after 4 attempts (attempts exhausted): last"},
		{&retry.Error{Attempts: 1, Reason: retry.ErrDeadline, Err: last}, "retry: gave up after 1 attempt (no time left before the deadline): last"},
		{&retry.Error{Attempts: 1, Reason: errors.New("body cannot be replayed"), Err: last}, "retry: gave up after 1 attempt (body cannot be replayed): last"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// A call retry must not repeat is still an attempt to what runs inside.
func TestNotIdempotentCallIsAnAttempt(t *testing.T) {
	ctx := resilience.WithCall(t.Context(), resilience.Call{Method: "POST", Idempotent: false})
	var inAttempt bool
	calls := 0
	err := retry.New().Do(ctx, func(ctx context.Context) error {
		calls++
		inAttempt = resilience.InAttempt(ctx)
		return errors.New("transient")
	})
	if err == nil || calls != 1 {
		t.Fatalf("got %v after %d calls, want the error after 1", err, calls)
	}
	if !inAttempt {
		t.Error("the operation of a call sent once does not run in an attempt")
	}
}

func TestNilOptionNamed(t *testing.T) {
	defer func() {
		if r := recover(); r != "retry: New: option 1 is nil" {
			t.Errorf("panic %v, want one naming the nil option", r)
		}
	}()
	retry.New(retry.WithMaxAttempts(2), nil)
}
