package throttle_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/throttle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func callTo(target string) context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: target, Method: "GET", Idempotent: true})
}

var errThrottled = resilience.Mark(errors.New("429"), resilience.KindThrottled)

// A dependency that can accept only a quarter of the calls offered (50 of
// 200 a second) and refuses the rest: the throttle sends it about K times
// what it accepts, not everything, and lets every call through again
// within about a window of its recovery.
func TestSparesARefusingDependency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New(throttle.WithWindow(10 * time.Second))
		var refusing bool
		var sent, accepted int
		var nextFree time.Time // the dependency accepts one call per 20ms
		op := func(context.Context) error {
			sent++
			if now := time.Now(); refusing && now.Before(nextFree) {
				return errThrottled
			} else if refusing {
				nextFree = now.Add(20 * time.Millisecond)
			}
			accepted++
			return nil
		}
		ctx := callTo("api.example.com:443")
		run := func(d time.Duration) (calls, rejected int) {
			for range int(d / (5 * time.Millisecond)) {
				calls++
				if errors.Is(th.Do(ctx, op), throttle.ErrRejected) {
					rejected++
				}
				time.Sleep(5 * time.Millisecond)
			}
			return calls, rejected
		}
		if _, rejected := run(10 * time.Second); rejected != 0 {
			t.Errorf("healthy: %d calls turned away, want none", rejected)
		}
		refusing = true
		run(10 * time.Second) // one window to settle
		sent, accepted = 0, 0
		calls, _ := run(20 * time.Second)
		if ratio := float64(sent) / float64(accepted); ratio > 2.5 || sent > calls*2/3 {
			t.Errorf("refusing: %d of %d calls sent, %d accepted (%.2f sent per accept); want about K=2 per accept",
				sent, calls, accepted, ratio)
		}
		// Random draws leave some of the dependency's slots unused.
		if perSecond := float64(accepted) / 20; perSecond < 30 {
			t.Errorf("refusing: %.1f calls accepted a second, want most of the capacity (50)", perSecond)
		}
		refusing = false
		run(12 * time.Second) // a window and a bit: the refusals leave it
		if calls, rejected := run(10 * time.Second); rejected != 0 {
			t.Errorf("recovered: %d of %d calls turned away, want none", rejected, calls)
		}
	})
}

// Uncapped, the SRE book's formula sends a dependency that refused
// everything about one call per window, and recovers slowly; the default
// cap keeps a tenth of the calls going to it.
func TestMaxProbability(t *testing.T) {
	for _, tt := range []struct {
		opts []throttle.Option
		want float64
	}{
		{nil, throttle.DefaultMaxProbability},
		{[]throttle.Option{throttle.WithMaxProbability(1)}, 1000.0 / 1001},
		{[]throttle.Option{throttle.WithMaxProbability(0.5)}, 0.5},
	} {
		synctest.Test(t, func(t *testing.T) {
			th := throttle.New(tt.opts...)
			for range 1000 {
				th.Do(context.Background(), func(context.Context) error { return errThrottled })
			}
			// Calls turned away count too: stop once the window has
			// 1000 requests whatever they were.
			if p := th.Probability(); p > tt.want+1e-9 {
				t.Errorf("probability %v, want at most %v", p, tt.want)
			}
		})
	}
}

// Over HTTP, a 429 is a refusal, and the error of a call turned away names
// the host.
func TestHTTP429(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	k := throttle.NewKeyed()
	c := &http.Client{Transport: resiliencehttp.NewTransport(nil, k)}
	defer c.CloseIdleConnections()
	var rejected error
	for range 200 {
		resp, err := c.Get(srv.URL)
		if err != nil {
			rejected = err
			continue
		}
		resp.Body.Close()
	}
	if !errors.Is(rejected, throttle.ErrRejected) {
		t.Fatalf("after 200 calls answered 429: last error %v, want ErrRejected", rejected)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.Contains(rejected.Error(), host) {
		t.Errorf("error %q does not name the host %s", rejected, host)
	}
	if n := seen.Load(); n > 120 {
		t.Errorf("the server saw %d of 200 calls; want the throttle to have spared it most", n)
	}
	if p, ok := k.Probability(host); !ok || p < 0.3 {
		t.Errorf("Probability(%s) = %v, %v; want above 0.3", host, p, ok)
	}
}

func TestKeyedThrottlesEachHost(t *testing.T) {
	k := throttle.NewKeyed()
	for range 100 {
		k.Do(callTo("a.example:443"), func(context.Context) error { return errThrottled })
	}
	for range 100 {
		if err := k.Do(callTo("b.example:443"), func(context.Context) error { return nil }); err != nil {
			t.Fatalf("another host: %v", err)
		}
	}
	if p, _ := k.Probability("b.example:443"); p != 0 {
		t.Errorf("the healthy host's probability is %v, want 0", p)
	}
	if p, _ := k.Probability("a.example:443"); p < 0.9 {
		t.Errorf("the refusing host's probability is %v, want above 0.9", p)
	}
	if n := k.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		f    func()
		want string
	}{
		{func() { throttle.New(throttle.WithK(0.5)) }, "throttle: WithK: k must be a finite number of at least 1, got 0.5"},
		{func() { throttle.New(throttle.WithK(nan())) }, "throttle: WithK"},
		{func() { throttle.New(throttle.WithWindow(0)) }, "throttle: WithWindow"},
		{func() { throttle.New(throttle.WithMaxProbability(0)) }, "throttle: WithMaxProbability: p must be in (0, 1], got 0"},
		{func() { throttle.New(throttle.WithMaxProbability(1.5)) }, "throttle: WithMaxProbability"},
		{func() { throttle.New(throttle.WithMaxKeys(3)) }, "throttle: New: WithMaxKeys applies to NewKeyed only"},
		{func() { throttle.NewKeyed(throttle.WithIdleTimeout(0)) }, "throttle: WithIdleTimeout"},
		{func() { throttle.NewKeyed(throttle.WithKey(nil)) }, "throttle: WithKey: f is nil"},
		{func() { throttle.New(nil) }, "throttle: New: option 0 is nil"},
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

func nan() float64 { z := 0.0; return z / z }

// The throttle adds no allocation to a call it lets through.
func TestNoAllocationOnSuccess(t *testing.T) {
	th := throttle.New()
	k := throttle.NewKeyed()
	ctx := callTo("api.example.com:443")
	op := func(context.Context) error { return nil }
	for name, p := range map[string]resilience.Policy{"Throttle": th, "Keyed": k} {
		if n := testing.AllocsPerRun(1000, func() { p.Do(ctx, op) }); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

func BenchmarkThrottle(b *testing.B) {
	th := throttle.New()
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		th.Do(ctx, op)
	}
}
