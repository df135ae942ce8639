package pushback_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// call returns the context of a call to host, with a deadline d from now if
// d > 0, and its cancel function.
func call(host string, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: host, Method: "GET", Idempotent: true})
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

var errThrottled = errors.New("429 Too Many Requests")

// exact releases held calls together, for tests that check when they go.
var exact = pushback.WithReleaseSpread(0)

func throttled(d time.Duration) error {
	return resilience.MarkRetryAfter(errThrottled, resilience.KindThrottled, d)
}

// closeGate makes one call to host that answers with a pushback of d.
func closeGate(t *testing.T, g *pushback.Gate, host string, d time.Duration) {
	t.Helper()
	ctx, cancel := call(host, 0)
	defer cancel()
	if err := g.Do(ctx, func(context.Context) error { return throttled(d) }); !errors.Is(err, errThrottled) {
		t.Fatalf("the closing call got %v, want its own error", err)
	}
}

func TestHoldsSameHostUntilRetryAfterAndLetsOtherHostsThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(exact)
		start := time.Now()
		closeGate(t, g, "a:443", 2*time.Second)
		if got := g.Until("a:443"); !got.Equal(start.Add(2 * time.Second)) {
			t.Fatalf("Until = %v, want 2s after the pushback", got.Sub(start))
		}

		// Another host goes through at once.
		ctx, cancel := call("b:443", time.Second)
		defer cancel()
		var at time.Duration
		if err := g.Do(ctx, func(context.Context) error { at = time.Since(start); return nil }); err != nil || at != 0 {
			t.Fatalf("other host: %v at %v, want nil at once", err, at)
		}

		// Calls to the throttled host go out when the pushback ends, not before.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var sent []time.Duration
		for range 5 {
			wg.Go(func() {
				ctx, cancel := call("a:443", 10*time.Second)
				defer cancel()
				err := g.Do(ctx, func(context.Context) error {
					mu.Lock()
					sent = append(sent, time.Since(start))
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Errorf("held call: %v", err)
				}
			})
		}
		wg.Wait()
		if len(sent) != 5 {
			t.Fatalf("%d calls sent, want 5", len(sent))
		}
		for _, d := range sent {
			if d != 2*time.Second {
				t.Fatalf("calls sent at %v, want every one at 2s", sent)
			}
		}
		if !g.Until("a:443").IsZero() {
			t.Fatalf("gate still closed after a successful probe")
		}
	})
}

func TestOneProbeGoesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New()
		closeGate(t, g, "a:443", time.Second)
		release := make(chan struct{})
		var sent atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ctx, cancel := call("a:443", 10*time.Second)
				defer cancel()
				g.Do(ctx, func(context.Context) error {
					if sent.Add(1) == 1 {
						<-release // the probe answers when the test says so
					}
					return nil
				})
			})
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := sent.Load(); n != 1 {
			t.Fatalf("%d calls sent once the pushback ended, want only the probe", n)
		}
		time.Sleep(500 * time.Millisecond) // under the probe timeout
		synctest.Wait()
		if n := sent.Load(); n != 1 {
			t.Fatalf("%d calls sent while the probe was out, want 1", n)
		}
		close(release)
		wg.Wait()
		if n := sent.Load(); n != 8 {
			t.Fatalf("%d calls sent after the probe's success, want 8", n)
		}
	})
}

// Once the probe succeeded, the held calls leave spread at random over the
// release spread, not in one instant.
func TestHeldCallsLeaveSpreadOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(pushback.WithReleaseSpread(100 * time.Millisecond))
		start := time.Now()
		closeGate(t, g, "a:443", time.Second)
		var mu sync.Mutex
		sent := map[time.Duration]int{}
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				ctx, cancel := call("a:443", 10*time.Second)
				defer cancel()
				g.Do(ctx, func(context.Context) error {
					mu.Lock()
					sent[time.Since(start)]++
					mu.Unlock()
					return nil
				})
			})
		}
		wg.Wait()
		n := 0
		for d, k := range sent {
			n += k
			if d < time.Second || d >= 1100*time.Millisecond {
				t.Fatalf("a call sent at %v, want within [1s, 1.1s)", d)
			}
		}
		if n != 50 || sent[time.Second] != 1 {
			t.Fatalf("%d calls sent, %d of them at 1s; want 50, only the probe at 1s", n, sent[time.Second])
		}
		if len(sent) < 25 {
			t.Fatalf("50 calls left at only %d distinct times: not spread", len(sent))
		}
	})
}

// A held call never waits out its release past its deadline less the
// minimum attempt time.
func TestReleaseSpreadRespectsTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(pushback.WithReleaseSpread(time.Hour))
		start := time.Now()
		closeGate(t, g, "a:443", time.Second)
		ctx, cancel := call("a:443", 1500*time.Millisecond)
		defer cancel()
		var at time.Duration
		if err := g.Do(ctx, func(context.Context) error { at = time.Since(start); return nil }); err != nil {
			t.Fatal(err)
		}
		// Alone, it was the probe and went at 1s. Now a call held behind
		// a probe, which answers 100ms after it arrived, leaves at its
		// last useful moment at the latest, not an hour later.
		closeGate(t, g, "a:443", time.Second)
		var wg sync.WaitGroup
		release := make(chan struct{})
		wg.Go(func() {
			ctx, cancel := call("a:443", 0)
			defer cancel()
			g.Do(ctx, func(context.Context) error { <-release; return nil })
		})
		time.Sleep(time.Second)
		synctest.Wait() // the probe is out
		ctx2, cancel2 := call("a:443", 600*time.Millisecond)
		defer cancel2()
		time.AfterFunc(100*time.Millisecond, func() { close(release) })
		t1 := time.Now()
		var at2 time.Duration
		if err := g.Do(ctx2, func(context.Context) error { at2 = time.Since(t1); return nil }); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if at != time.Second || at2 < 100*time.Millisecond || at2 > 590*time.Millisecond {
			t.Fatalf("probe at %v, follower at %v; want 1s, and the follower within [100ms, 590ms]", at, at2)
		}
	})
}

func TestProbePushedBackAgainKeepsTheGateClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(exact)
		start := time.Now()
		closeGate(t, g, "a:443", time.Second)
		var mu sync.Mutex
		var sent []time.Duration
		op := func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, time.Since(start))
			if len(sent) == 1 {
				return throttled(time.Second) // the probe at 1s is pushed back
			}
			return nil
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range 4 {
			wg.Go(func() {
				// Two callers can wait until 2s, two cannot.
				ctx, cancel := call("a:443", time.Duration(1500+i%2*1000)*time.Millisecond)
				defer cancel()
				errs[i] = g.Do(ctx, op)
			})
		}
		wg.Wait()
		// Whoever was woken first probed and got its own 429; the other
		// short callers were turned away when the gate closed again, and
		// the other long ones went at 2s.
		var probes, longProbes int
		for i, err := range errs {
			long := i%2 == 1
			switch {
			case errors.Is(err, errThrottled):
				probes++
				if long {
					longProbes++
				}
			case long && err != nil, !long && !errors.Is(err, pushback.ErrClosed):
				t.Errorf("caller %d (long %v): %v", i, long, err)
			}
		}
		if probes != 1 {
			t.Errorf("%d callers got the probe's 429, want 1", probes)
		}
		if want := 1 + 2 - longProbes; len(sent) != want {
			t.Fatalf("%d calls sent, want %d: the probe and the long callers", len(sent), want)
		}
		if sent[0] != time.Second {
			t.Fatalf("probe sent at %v, want 1s", sent[0])
		}
		for _, d := range sent[1:] {
			if d != 2*time.Second {
				t.Fatalf("calls sent at %v: after the probe, want each at 2s", sent)
			}
		}
	})
}

func TestShortDeadlineTurnedAwayAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New()
		start := time.Now()
		closeGate(t, g, "a:443", 3*time.Second)
		time.Sleep(time.Second)
		for _, d := range []time.Duration{time.Second, 2 * time.Second, 2*time.Second + 5*time.Millisecond} {
			ctx, cancel := call("a:443", d)
			calls := 0
			before := time.Now()
			err := g.Do(ctx, func(context.Context) error { calls++; return nil })
			cancel()
			var ce *pushback.ClosedError
			if !errors.As(err, &ce) || !errors.Is(err, pushback.ErrClosed) || calls != 0 || time.Since(before) != 0 {
				t.Fatalf("deadline %v: got %v after %v with %d calls; want ErrClosed at once, nothing sent", d, err, time.Since(before), calls)
			}
			if ce.Key != "a:443" || !ce.Until.Equal(start.Add(3*time.Second)) {
				t.Fatalf("ClosedError %+v, want key a:443 and Until 3s after the pushback", ce)
			}
			if k := resilience.Classify(err); k != resilience.KindThrottled {
				t.Fatalf("kind %v, want throttled", k)
			}
			if after, ok := resilience.RetryAfter(err); !ok || after != 2*time.Second {
				t.Fatalf("RetryAfter = %v, %v; want 2s", after, ok)
			}
			if !strings.Contains(err.Error(), "a:443") || !strings.Contains(err.Error(), "until") {
				t.Fatalf("message %q should name the key and say until when", err)
			}
		}
		// A deadline 10ms past the reopening is enough.
		ctx, cancel := call("a:443", 2*time.Second+10*time.Millisecond)
		defer cancel()
		if err := g.Do(ctx, func(context.Context) error { return nil }); err != nil {
			t.Fatalf("a call that can wait: %v", err)
		}
	})
}

// A retry outside the gate does not keep trying a call the gate turned
// away: the call's deadline ends before the gate reopens.
func TestTurnedAwayIsNotRetriedPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New()
		closeGate(t, g, "a:443", 5*time.Second)
		p := resilience.Chain(retry.New(), g)
		ctx, cancel := call("a:443", 2*time.Second)
		defer cancel()
		calls := 0
		start := time.Now()
		err := p.Do(ctx, func(context.Context) error { calls++; return nil })
		var re *retry.Error
		if !errors.As(err, &re) || re.Reason != retry.ErrDeadline || !errors.Is(err, pushback.ErrClosed) {
			t.Fatalf("got %v, want retry.ErrDeadline wrapping ErrClosed", err)
		}
		if calls != 0 || time.Since(start) != 0 {
			t.Fatalf("%d calls, returned after %v; want none, at once", calls, time.Since(start))
		}
	})
}

func TestReportedPushbackClosesTheGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(exact)
		ctx, cancel := call("a:443", 0)
		defer cancel()
		start := time.Now()
		err := g.Do(ctx, func(ctx context.Context) error {
			resilience.ReportPushback(ctx, 2*time.Second) // a 200 with no quota left
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Until("a:443"); !got.Equal(start.Add(2 * time.Second)) {
			t.Fatalf("Until = %v, want 2s", got.Sub(start))
		}
		var at time.Duration
		g.Do(ctx, func(context.Context) error { at = time.Since(start); return nil })
		if at != 2*time.Second {
			t.Fatalf("next call sent at %v, want 2s", at)
		}
	})
}

func TestWhatDoesNotCloseTheGate(t *testing.T) {
	tests := []struct {
		name string
		op   func(context.Context) error
	}{
		{"success", func(context.Context) error { return nil }},
		{"503 without Retry-After", func(context.Context) error { return errors.New("503") }},
		{"rejected with a delay", func(context.Context) error {
			return resilience.MarkRetryAfter(errors.New("turned away"), resilience.KindRejected, time.Second)
		}},
		{"zero pushback", func(context.Context) error { return throttled(0) }},
		{"reported zero", func(ctx context.Context) error { resilience.ReportPushback(ctx, 0); return nil }},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			g := pushback.New()
			ctx, cancel := call("a:443", 0)
			defer cancel()
			g.Do(ctx, tt.op)
			if u := g.Until("a:443"); !u.IsZero() {
				t.Fatalf("%s closed the gate until %v", tt.name, u)
			}
		})
	}
}

func TestPushbackIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tt := range []struct {
			opts []pushback.Option
			want time.Duration
		}{
			{nil, pushback.DefaultMaxPushback},
			{[]pushback.Option{pushback.WithMaxPushback(3 * time.Second)}, 3 * time.Second},
		} {
			g := pushback.New(tt.opts...)
			start := time.Now()
			closeGate(t, g, "a:443", time.Hour)
			if got := g.Until("a:443").Sub(start); got != tt.want {
				t.Fatalf("closed for %v, want the cap %v", got, tt.want)
			}
		}
	})
}

func TestHungProbeDoesNotHoldTheOthersPastTheProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(exact, pushback.WithProbeTimeout(200*time.Millisecond))
		start := time.Now()
		closeGate(t, g, "a:443", time.Second)
		release := make(chan struct{})
		var first atomic.Bool
		var mu sync.Mutex
		var followers []time.Duration
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				ctx, cancel := call("a:443", 0)
				defer cancel()
				g.Do(ctx, func(context.Context) error {
					if first.CompareAndSwap(false, true) {
						<-release
						return nil
					}
					mu.Lock()
					followers = append(followers, time.Since(start))
					mu.Unlock()
					return nil
				})
			})
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mu.Lock()
		got := append([]time.Duration(nil), followers...)
		mu.Unlock()
		if len(got) != 2 || got[0] != 1200*time.Millisecond || got[1] != 1200*time.Millisecond {
			t.Fatalf("followers sent at %v, want both at 1.2s (pushback end + probe timeout)", got)
		}
		close(release)
		wg.Wait()
	})
}

func TestHeldCallHonoursItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New()
		closeGate(t, g, "a:443", 5*time.Second)
		ctx, cancel := call("a:443", 0)
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		calls := 0
		err := g.Do(ctx, func(context.Context) error { calls++; return nil })
		if err != context.Canceled || calls != 0 || time.Since(start) != time.Second {
			t.Fatalf("got %v after %v with %d calls; want context.Canceled at 1s, nothing sent", err, time.Since(start), calls)
		}
	})
}

// A caller held while the probe is out waits only as long as its deadline
// allows, then is turned away.
func TestHeldForTheProbeNoLongerThanTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(pushback.WithProbeTimeout(10 * time.Second))
		start := time.Now()
		closeGate(t, g, "a:443", time.Second)
		release := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			ctx, cancel := call("a:443", 0)
			defer cancel()
			g.Do(ctx, func(context.Context) error { <-release; return nil })
		})
		time.Sleep(time.Second)
		synctest.Wait() // the probe is out
		ctx, cancel := call("a:443", 500*time.Millisecond)
		defer cancel()
		err := g.Do(ctx, func(context.Context) error { t.Error("sent while the probe was out"); return nil })
		if !errors.Is(err, pushback.ErrClosed) || time.Since(start) != 1490*time.Millisecond {
			t.Fatalf("got %v at %v; want ErrClosed at 1.49s (deadline less the minimum attempt time)", err, time.Since(start))
		}
		close(release)
		wg.Wait()
	})
}

func TestCanceledProbeHandsOverToTheNextCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New()
		closeGate(t, g, "a:443", time.Second)
		time.Sleep(time.Second)
		ctx, cancel := call("a:443", 0)
		g.Do(ctx, func(context.Context) error { cancel(); return context.Canceled })
		// No answer came: the gate is still reopening, and the next call probes.
		ctx2, cancel2 := call("a:443", 0)
		defer cancel2()
		start := time.Now()
		if err := g.Do(ctx2, func(context.Context) error { return nil }); err != nil || time.Since(start) != 0 {
			t.Fatalf("next call: %v after %v, want it sent at once as the probe", err, time.Since(start))
		}
	})
}

func TestRegistryIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(pushback.WithMaxKeys(3), pushback.WithIdleTimeout(time.Minute))
		for i := range 10 {
			closeGate(t, g, fmt.Sprintf("h%d:443", i), time.Second)
			if n := g.Len(); n > 3 {
				t.Fatalf("after %d hosts the gate keeps %d keys, want at most 3", i+1, n)
			}
		}
		// The most recent keys are kept, closed.
		if g.Until("h9:443").IsZero() {
			t.Fatalf("the latest key was forgotten")
		}
		// Idle keys go, but never before the maximum pushback has passed.
		// The first sweep notes them idle, the next one drops them.
		time.Sleep(2 * time.Minute)
		closeGate(t, g, "mark:443", time.Second)
		time.Sleep(2 * time.Minute)
		closeGate(t, g, "fresh:443", time.Second)
		if n := g.Len(); n != 2 {
			t.Fatalf("%d keys after the others were idle for 2 minutes, want 2 (mark and fresh)", n)
		}
		g2 := pushback.New(pushback.WithIdleTimeout(time.Second), pushback.WithMaxPushback(time.Minute))
		closeGate(t, g2, "a:443", time.Minute)
		time.Sleep(30 * time.Second)
		closeGate(t, g2, "b:443", time.Second)
		if g2.Until("a:443").IsZero() {
			t.Fatalf("a closed gate was forgotten before it reopened")
		}
	})
}

func TestCustomKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type tenant struct{}
		g := pushback.New(pushback.WithKey(func(ctx context.Context) string { s, _ := ctx.Value(tenant{}).(string); return s }))
		ctx := context.WithValue(context.Background(), tenant{}, "t1")
		g.Do(ctx, func(context.Context) error { return throttled(time.Second) })
		if g.Until("t1").IsZero() || g.Len() != 1 {
			t.Fatalf("custom key not used")
		}
	})
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		opt  pushback.Option
		want string
	}{
		{pushback.WithMaxPushback(0), "pushback: WithMaxPushback"},
		{pushback.WithMinAttemptTime(-1), "pushback: WithMinAttemptTime"},
		{pushback.WithProbeTimeout(0), "pushback: WithProbeTimeout"},
		{pushback.WithKey(nil), "pushback: WithKey"},
		{pushback.WithMaxKeys(0), "pushback: WithMaxKeys"},
		{pushback.WithIdleTimeout(0), "pushback: WithIdleTimeout"},
		{pushback.WithReleaseSpread(-1), "pushback: WithReleaseSpread"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, tt.want) {
					t.Errorf("got panic %v, want one starting %q", r, tt.want)
				}
			}()
			pushback.New(tt.opt)
		}()
	}
}

func TestOptionsAreComparable(t *testing.T) {
	if pushback.WithMaxPushback(time.Second) != pushback.WithMaxPushback(time.Second) ||
		pushback.WithMaxPushback(time.Second) == pushback.WithMaxPushback(2*time.Second) ||
		pushback.WithName("a") != pushback.WithName("a") {
		t.Fatal("options with equal values must compare equal")
	}
}

func scoped(d time.Duration, s resilience.PushbackScope) func(context.Context) error {
	return func(context.Context) error {
		return resilience.MarkScopedRetryAfter(errThrottled, resilience.KindThrottled, d, s)
	}
}

// do makes one call to host with op, and reports whether it ran.
func do(g *pushback.Gate, host string, deadline time.Duration, op func(context.Context) error) (ran bool) {
	ctx, cancel := call(host, deadline)
	defer cancel()
	g.Do(ctx, func(ctx context.Context) error { ran = true; return op(ctx) })
	return ran
}

func ok(context.Context) error { return nil }

// One request's pushback (resilience.PushbackRequest) closes the gate only
// when at least half of the host's last 20 answers pushed back.
func TestRequestPushbackClosesOnEvidence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(exact)
		for range 20 {
			do(g, "a:443", 0, ok)
		}
		for i := 1; i <= 10; i++ {
			do(g, "a:443", 0, scoped(time.Second, resilience.PushbackRequest))
			closed := !g.Until("a:443").IsZero()
			if closed != (i == 10) {
				t.Fatalf("after %d pushbacks in the last 20 answers: closed %v, want %v", i, closed, i == 10)
			}
		}
		// A fresh host's first answer is all the evidence there is.
		do(g, "b:443", 0, scoped(time.Second, resilience.PushbackRequest))
		if g.Until("b:443").IsZero() {
			t.Fatal("a pushback as a host's only answer did not close the gate")
		}
	})
}

// While the gate is closed or reopening, one request's pushback keeps it
// closed: the probe's answer is the evidence.
func TestRequestPushbackOnTheProbeKeepsTheGateClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(exact)
		for range 20 {
			do(g, "a:443", 0, ok)
		}
		do(g, "a:443", 0, func(ctx context.Context) error { resilience.ReportPushback(ctx, time.Second); return nil })
		start := time.Now()
		do(g, "a:443", 0, scoped(time.Second, resilience.PushbackRequest)) // the probe, at 1s
		if got := g.Until("a:443").Sub(start); got != 2*time.Second {
			t.Fatalf("after the probe was pushed back the gate reopens %v after it was closed, want 2s", got)
		}
	})
}

// A pushback that concerns one call alone (resilience.PushbackCall: its
// key in flight) never closes the gate, and as a probe's answer opens it.
func TestCallPushbackNeverClosesTheGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pushback.New(exact)
		for range 30 {
			do(g, "a:443", 0, scoped(time.Second, resilience.PushbackCall))
		}
		if u := g.Until("a:443"); !u.IsZero() {
			t.Fatalf("call-scoped pushback closed the gate until %v", u)
		}
		closeGate(t, g, "a:443", time.Second)
		do(g, "a:443", 0, scoped(time.Second, resilience.PushbackCall)) // the probe
		if u := g.Until("a:443"); !u.IsZero() {
			t.Fatalf("a probe answered with call-scoped pushback left the gate closed until %v", u)
		}
		if !do(g, "a:443", 10*time.Millisecond, ok) {
			t.Fatal("the gate did not let the next call through")
		}
	})
}
