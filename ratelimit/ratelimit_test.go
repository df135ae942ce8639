package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/ratelimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// run calls p.Do and returns the time, since start, at which op ran, or the
// error.
func run(ctx context.Context, p resilience.Policy, start time.Time) (time.Duration, error) {
	var at time.Duration
	err := p.Do(ctx, func(context.Context) error { at = time.Since(start); return nil })
	return at, err
}

func TestSpacesCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(10, 1, ratelimit.WithMaxWait(time.Second))
		start := time.Now()
		var got []time.Duration
		for range 6 {
			at, err := run(t.Context(), l, start)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, at)
		}
		want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond}
		if !slices.Equal(got, want) {
			t.Fatalf("calls ran at %v, want %v", got, want)
		}
	})
}

func TestSpacesConcurrentCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(rate.Every(250*time.Millisecond), 2, ratelimit.WithMaxWait(time.Minute))
		start := time.Now()
		var (
			mu  sync.Mutex
			got []time.Duration
			wg  sync.WaitGroup
		)
		for range 8 {
			wg.Go(func() {
				at, err := run(t.Context(), l, start)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				got = append(got, at)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(got)
		ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
		want := []time.Duration{0, 0, ms(250), ms(500), ms(750), ms(1000), ms(1250), ms(1500)}
		if !slices.Equal(got, want) {
			t.Fatalf("calls ran at %v, want %v (a burst of 2, then one every 250ms)", got, want)
		}
	})
}

func TestFailsFastWithWaitNeeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(10, 3)
		start := time.Now()
		for i := range 3 {
			if _, err := run(t.Context(), l, start); err != nil {
				t.Fatalf("burst call %d: %v", i+1, err)
			}
		}
		check := func(want time.Duration) {
			t.Helper()
			_, err := run(t.Context(), l, start)
			var le *ratelimit.LimitedError
			if !errors.Is(err, ratelimit.ErrLimited) || !errors.As(err, &le) {
				t.Fatalf("got %v, want ErrLimited", err)
			}
			if le.Wait != want {
				t.Errorf("Wait = %v, want %v", le.Wait, want)
			}
			if d, ok := resilience.RetryAfter(err); !ok || d != want {
				t.Errorf("RetryAfter = %v, %v; want %v, true", d, ok, want)
			}
			if k := resilience.Classify(err); k != resilience.KindThrottled {
				t.Errorf("Classify = %v, want throttled", k)
			}
		}
		check(100 * time.Millisecond)
		time.Sleep(30 * time.Millisecond)
		// Turned-away calls used up nothing.
		check(70 * time.Millisecond)
		time.Sleep(70 * time.Millisecond)
		if _, err := run(t.Context(), l, start); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
	})
}

func TestWaitLongerThanMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(1, 1, ratelimit.WithMaxWait(500*time.Millisecond))
		start := time.Now()
		run(t.Context(), l, start)
		_, err := run(t.Context(), l, start)
		var le *ratelimit.LimitedError
		if !errors.As(err, &le) || le.Wait != time.Second {
			t.Fatalf("got %v, want LimitedError with Wait 1s", err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("turned away after %v, want at once", d)
		}
		time.Sleep(time.Second)
		if at, err := run(t.Context(), l, start); err != nil || at != time.Second {
			t.Fatalf("got %v, %v; want a call at 1s (the turned-away call took no turn)", at, err)
		}
	})
}

func TestWaitPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(1, 1, ratelimit.WithMaxWait(time.Minute))
		start := time.Now()
		run(t.Context(), l, start)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if _, err := run(ctx, l, start); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("got %v, want ErrLimited (the turn comes after the deadline)", err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("turned away after %v, want at once", d)
		}
	})
}

func TestCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(1, 1, ratelimit.WithMaxWait(time.Minute))
		start := time.Now()
		run(t.Context(), l, start)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(300*time.Millisecond, cancel)
		if _, err := run(ctx, l, start); err != context.Canceled {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("returned after %v, want 300ms", d)
		}
		// The canceled call gave its turn back.
		if at, err := run(t.Context(), l, start); err != nil || at != time.Second {
			t.Fatalf("got %v, %v; want the next call at 1s", at, err)
		}
	})
}

type keyCtx struct{}

func keyFrom(ctx context.Context) string { s, _ := ctx.Value(keyCtx{}).(string); return s }

func TestKeyed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := ratelimit.NewKeyed(1, 1, ratelimit.WithKey(keyFrom), ratelimit.WithMaxKeys(50), ratelimit.WithIdleTimeout(time.Minute))
		start := time.Now()
		ctxA := context.WithValue(t.Context(), keyCtx{}, "a")
		run(ctxA, k, start)
		if _, err := run(ctxA, k, start); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("second call for a: got %v, want ErrLimited", err)
		}
		if _, err := run(context.WithValue(t.Context(), keyCtx{}, "b"), k, start); err != nil {
			t.Fatalf("first call for b: %v (keys must not share a bucket)", err)
		}
		for i := range 5000 {
			run(context.WithValue(t.Context(), keyCtx{}, fmt.Sprint("k", i)), k, start)
			if n := k.Len(); n > 50 {
				t.Fatalf("Len = %d, want <= 50", n)
			}
		}
		// The first sweep notes the keys idle, the next one drops them.
		time.Sleep(2 * time.Minute)
		run(context.WithValue(t.Context(), keyCtx{}, "mark"), k, start)
		time.Sleep(2 * time.Minute)
		run(ctxA, k, start)
		if n := k.Len(); n != 2 {
			t.Fatalf("after the idle timeout: Len = %d, want 2 (mark and a)", n)
		}
	})
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		f    func()
		want string
	}{
		{func() { ratelimit.New(0, 1) }, "ratelimit: New: rate must be positive, got 0"},
		{func() { ratelimit.New(10, 0) }, "ratelimit: New: burst must be at least 1, got 0"},
		{func() { ratelimit.NewKeyed(-1, 1) }, "ratelimit: NewKeyed: rate"},
		{func() { ratelimit.New(1, 1, ratelimit.WithMaxWait(-time.Second)) }, "ratelimit: WithMaxWait"},
		{func() { ratelimit.New(1, 1, ratelimit.WithKey(keyFrom)) }, "ratelimit: New: WithKey applies to NewKeyed only"},
		{func() { ratelimit.NewKeyed(1, 1, ratelimit.WithMaxKeys(0)) }, "ratelimit: WithMaxKeys"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if s, _ := recover().(string); !strings.HasPrefix(s, tt.want) {
					t.Errorf("got panic %q, want %q", s, tt.want)
				}
			}()
			tt.f()
		}()
	}
	ratelimit.New(rate.Inf, 0) // allowed: an infinite rate needs no burst
}

func BenchmarkLimiter(b *testing.B) {
	l := ratelimit.New(1e9, 1_000_000)
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Do(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyed(b *testing.B) {
	k := ratelimit.NewKeyed(1e9, 1_000_000)
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443"})
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := k.Do(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLimitedErrorRoundsWait(t *testing.T) {
	for wait, want := range map[time.Duration]string{
		998170674 * time.Nanosecond: "ratelimit: rate limit exceeded, next call allowed in 998ms",
		1500 * time.Nanosecond:      "ratelimit: rate limit exceeded, next call allowed in 2µs",
		3*time.Second + 4:           "ratelimit: rate limit exceeded, next call allowed in 3s",
	} {
		if got := (&ratelimit.LimitedError{Wait: wait}).Error(); got != want {
			t.Errorf("Wait %v: got %q, want %q", int64(wait), got, want)
		}
	}
}

func TestNilOptionNamed(t *testing.T) {
	for name, build := range map[string]func(){
		"ratelimit: New: option 0 is nil":      func() { ratelimit.New(1, 1, nil) },
		"ratelimit: NewKeyed: option 0 is nil": func() { ratelimit.NewKeyed(1, 1, nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r != name {
					t.Errorf("panic %v, want %q", r, name)
				}
			}()
			build()
		}()
	}
}
