package adaptive_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/resiliencehttp"
)

func callTo(target string) context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: target, Method: "GET", Idempotent: true})
}

// holdSlot takes a slot of p until the returned function is called.
func holdSlot(t *testing.T, ctx context.Context, p resilience.Policy) (release func()) {
	t.Helper()
	taken, done := make(chan struct{}), make(chan struct{})
	go p.Do(ctx, func(context.Context) error {
		close(taken)
		<-done
		return nil
	})
	<-taken
	return sync.OnceFunc(func() { close(done) })
}

func TestLimitErrorNamesHostAndLimit(t *testing.T) {
	l := adaptive.New(adaptive.WithLimits(1, 1))
	ctx := callTo("api.example.com:443")
	release := holdSlot(t, ctx, l)
	defer release()
	err := l.Do(ctx, func(context.Context) error { return nil })
	if !errors.Is(err, adaptive.ErrLimited) {
		t.Fatalf("got %v, want ErrLimited", err)
	}
	var le *adaptive.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("got %T, want a *LimitError in the chain", err)
	}
	want := adaptive.LimitError{Target: "api.example.com:443", Limit: 1, Reason: adaptive.ReasonLimit}
	if *le != want {
		t.Errorf("got %+v, want %+v", *le, want)
	}
	if msg := err.Error(); !strings.Contains(msg, "api.example.com:443") || !strings.Contains(msg, "limit 1") {
		t.Errorf("error %q does not name the host and the limit", msg)
	}
	if k := resilience.Classify(err); k != resilience.KindThrottled || k.Failure() {
		t.Errorf("Classify = %v, want throttled, not a failure", k)
	}
}

// Calls turned away by the limiter are not the dependency's failures: a
// breaker outside it never opens for them.
func TestBreakerDoesNotCountRejections(t *testing.T) {
	l := adaptive.New(adaptive.WithLimits(1, 1))
	b := breaker.New(breaker.WithConsecutiveFailures(1))
	p := resilience.Chain(b, l)
	release := holdSlot(t, context.Background(), l)
	for range 10 {
		if err := p.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, adaptive.ErrLimited) {
			t.Fatalf("got %v, want ErrLimited", err)
		}
	}
	release()
	if s := b.State(); s != breaker.Closed {
		t.Errorf("breaker %v after ten rejections, want closed", s)
	}
}

func TestQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := adaptive.New(adaptive.WithLimits(1, 1), adaptive.WithQueue(1, time.Second))
		ok := func(context.Context) error { return nil }

		// A queued call gets the slot when it comes free.
		release := holdSlot(t, context.Background(), l)
		time.AfterFunc(300*time.Millisecond, release)
		start := time.Now()
		if err := l.Do(context.Background(), ok); err != nil {
			t.Fatalf("queued call: %v", err)
		}
		if waited := time.Since(start); waited != 300*time.Millisecond {
			t.Errorf("queued call waited %v, want 300ms", waited)
		}

		// The queue is bounded, and so is the wait.
		release = holdSlot(t, context.Background(), l)
		errs := make(chan error)
		go func() { errs <- l.Do(context.Background(), ok) }()
		synctest.Wait()
		var le *adaptive.LimitError
		if err := l.Do(context.Background(), ok); !errors.As(err, &le) || le.Reason != adaptive.ReasonQueueFull {
			t.Errorf("with the queue full: got %v, want a LimitError for %s", err, adaptive.ReasonQueueFull)
		}
		if err := <-errs; !errors.As(err, &le) || le.Reason != adaptive.ReasonQueueTimeout {
			t.Errorf("after the maximum wait: got %v, want a LimitError for %s", err, adaptive.ReasonQueueTimeout)
		}

		// A caller that gives up while queued gets its own error.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := l.Do(ctx, ok); err != context.DeadlineExceeded {
			t.Errorf("deadline while queued: got %v, want context.DeadlineExceeded", err)
		}
		release()
		if err := l.Do(context.Background(), ok); err != nil {
			t.Errorf("after everything was released: %v", err)
		}
	})
}

func TestSlotHeldUntilBodyClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	c := &http.Client{Transport: resiliencehttp.NewTransport(nil, adaptive.NewKeyed(adaptive.WithLimits(1, 1)))}
	defer c.CloseIdleConnections()

	first, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(srv.URL)
	if !errors.Is(err, adaptive.ErrLimited) {
		t.Fatalf("second call with the first body open: got %v, want ErrLimited", err)
	}
	if host := strings.TrimPrefix(srv.URL, "http://"); !strings.Contains(err.Error(), host) {
		t.Errorf("error %q does not name the host %s", err, host)
	}
	first.Body.Close()
	second, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("after the first body was closed: %v", err)
	}
	io.ReadAll(second.Body)
	second.Body.Close()
}

func TestKeyedLimitsEachHost(t *testing.T) {
	k := adaptive.NewKeyed(adaptive.WithLimits(1, 1))
	a, b := callTo("a.example:443"), callTo("b.example:443")
	release := holdSlot(t, a, k)
	defer release()
	ok := func(context.Context) error { return nil }
	if err := k.Do(b, ok); err != nil {
		t.Errorf("another host: %v", err)
	}
	if err := k.Do(a, ok); !errors.Is(err, adaptive.ErrLimited) {
		t.Errorf("the same host: got %v, want ErrLimited", err)
	}
	if n, ok := k.Limit("a.example:443"); !ok || n != 1 {
		t.Errorf("Limit(a) = %d, %v; want 1, true", n, ok)
	}
	if _, ok := k.Limit("c.example:443"); ok {
		t.Error("Limit of a host never seen reports a limiter")
	}
	if n := k.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
}

func TestPanicGivesSlotBack(t *testing.T) {
	l := adaptive.New(adaptive.WithLimits(1, 1))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not go on")
			}
		}()
		l.Do(context.Background(), func(context.Context) error { panic("boom") })
	}()
	if n := l.InFlight(); n != 0 {
		t.Errorf("%d calls in flight after the panic, want 0", n)
	}
	if err := l.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Errorf("after the panic: %v", err)
	}
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		f    func()
		want string
	}{
		{func() { adaptive.New(adaptive.WithLimits(0, 10)) }, "adaptive: WithLimits: min must be at least 1, got 0"},
		{func() { adaptive.New(adaptive.WithLimits(5, 4)) }, "adaptive: WithLimits: max must be at least min (5), got 4"},
		{func() { adaptive.New(adaptive.WithInitialLimit(300)) }, "adaptive: WithInitialLimit: n must be within [2, 200], got 300"},
		{func() { adaptive.New(adaptive.WithQueue(0, time.Second)) }, "adaptive: WithQueue: size"},
		{func() { adaptive.New(adaptive.WithQueue(1, 0)) }, "adaptive: WithQueue: maxWait"},
		{func() { adaptive.New(adaptive.WithQueue(1, -1)) }, "adaptive: WithQueue: maxWait"},
		{func() { adaptive.New(adaptive.WithMaxKeys(3)) }, "adaptive: New: WithMaxKeys applies to NewKeyed only"},
		{func() { adaptive.NewKeyed(adaptive.WithIdleTimeout(0)) }, "adaptive: WithIdleTimeout"},
		{func() { adaptive.NewKeyed(adaptive.WithKey(nil)) }, "adaptive: WithKey: f is nil"},
		{func() { adaptive.NewKeyed(nil) }, "adaptive: NewKeyed: option 0 is nil"},
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
}

// The limiter adds no allocation to a call it lets through.
func TestNoAllocationOnSuccess(t *testing.T) {
	l := adaptive.New()
	k := adaptive.NewKeyed()
	ctx := callTo("api.example.com:443")
	op := func(context.Context) error { return nil }
	for name, p := range map[string]resilience.Policy{"Limiter": l, "Keyed": k} {
		if n := testing.AllocsPerRun(1000, func() { p.Do(ctx, op) }); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

func BenchmarkLimiter(b *testing.B) {
	l := adaptive.New()
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		l.Do(ctx, op)
	}
}

func BenchmarkKeyed(b *testing.B) {
	k := adaptive.NewKeyed()
	ctx := callTo("api.example.com:443")
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		k.Do(ctx, op)
	}
}

type speculativeKey struct{}

// TestSpeculative checks that a speculative call gets in only below the
// limit while the dependency shows no queue, and never raises the limit.
func TestSpeculative(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := adaptive.New(adaptive.WithLimits(2, 10), adaptive.WithInitialLimit(2),
			adaptive.WithSpeculative(func(ctx context.Context) bool { return ctx.Value(speculativeKey{}) != nil }))
		ctx := callTo("api:443")
		spec := context.WithValue(ctx, speculativeKey{}, true)
		sleep := func(d time.Duration) func(context.Context) error {
			return func(context.Context) error { time.Sleep(d); return nil }
		}
		for range 12 { // a window of 10ms calls: the baseline
			if err := l.Do(ctx, sleep(10*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Do(spec, sleep(10*time.Millisecond)); err != nil {
			t.Fatalf("speculative call on a host that keeps up: %v, want it let in", err)
		}

		release1, release2 := holdSlot(t, ctx, l), holdSlot(t, ctx, l)
		var le *adaptive.LimitError
		if err := l.Do(spec, sleep(10*time.Millisecond)); !errors.As(err, &le) || le.Reason != adaptive.ReasonSpeculative || l.Limit() != 2 {
			t.Fatalf("speculative call at the limit: got %v, limit %d; want ReasonSpeculative, the limit still 2", err, l.Limit())
		}
		if err := l.Do(ctx, sleep(10*time.Millisecond)); err != nil || l.Limit() != 3 {
			t.Fatalf("call at the limit: got %v, limit %d; want it let in, the limit raised to 3", err, l.Limit())
		}
		release1()
		release2()
		synctest.Wait()

		// The last call to come back shows a queue: speculative calls
		// wait for a call that does not.
		if err := l.Do(ctx, sleep(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if err := l.Do(spec, sleep(10*time.Millisecond)); !errors.As(err, &le) || le.Reason != adaptive.ReasonSpeculative {
			t.Fatalf("speculative call after a slow one: got %v, want ReasonSpeculative", err)
		}
		if err := l.Do(ctx, sleep(10*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if err := l.Do(spec, sleep(10*time.Millisecond)); err != nil {
			t.Fatalf("speculative call after a fast one: %v, want it let in", err)
		}
	})
}
