package adaptive_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience/adaptive"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The overload: 200 calls/s, 3s deadline, the upstream's capacity
// (400/s: 8 workers, 20ms each) drops to a quarter of the offered load
// (one worker) for 8s, then comes back.
func TestOverloadShrinksTheLimitAndItGrowsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream(8, 20*time.Millisecond)
		l := adaptive.New()
		var tl timeline
		begin := time.Now()
		res := load(l, u, 200, 16*time.Second, 3*time.Second, func(at time.Duration) {
			switch at {
			case 4 * time.Second:
				u.set(1, 20*time.Millisecond)
			case 12 * time.Second:
				u.set(8, 20*time.Millisecond)
			}
			tl.record(at, l.Limit())
		})
		before := summarise(res, begin, 0, 4*time.Second)
		if before.ok != before.calls {
			t.Errorf("before the fault: %d of %d calls succeeded, want all", before.ok, before.calls)
		}
		// From the onset: the calls let in before the limiter saw the queue
		// count too.
		fault := summarise(res, begin, 4*time.Second, 12*time.Second)
		perSecond := float64(fault.ok) / 8
		if perSecond < 0.95*50 {
			t.Errorf("during the fault: %.1f successes/s, want at least 95%% of the capacity (50/s)", perSecond)
		}
		if fault.p99 > 200*time.Millisecond {
			t.Errorf("during the fault: p99 %v, want at most 200ms", fault.p99)
		}
		if lo, hi := tl.between(5*time.Second, 12*time.Second); hi > 10 {
			t.Errorf("during the fault the limit went from %d to %d, want at most 10", lo, hi)
		}
		after := summarise(res, begin, 12500*time.Millisecond, 16*time.Second)
		if after.ok != after.calls {
			t.Errorf("from 500ms after the recovery: %d of %d calls succeeded, want all", after.ok, after.calls)
		}
		if u.wasted > 0 {
			t.Errorf("the upstream served %d calls whose callers had given up, want none", u.wasted)
		}
		t.Logf("before %+v, fault %+v (%.1f/s), after %+v, limit during the fault %v",
			before, fault, perSecond, after, fmt.Sprint(tl.between(5*time.Second, 12*time.Second)))
	})
}

// A slow tail is not overload: a fifth of the replies take 2s while the
// upstream has room to spare. No call may be turned away.
func TestSlowTailIsNotOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream(8, 20*time.Millisecond)
		u.slowEvery, u.slow = 5, 2*time.Second
		l := adaptive.New()
		var tl timeline
		begin := time.Now()
		res := load(l, u, 200, 20*time.Second, 3*time.Second, func(at time.Duration) { tl.record(at, l.Limit()) })
		s := summarise(res, begin, 0, 20*time.Second)
		if s.ok != s.calls {
			t.Errorf("%d of %d calls succeeded, want all", s.ok, s.calls)
		}
		lo, hi := tl.between(0, 20*time.Second)
		t.Logf("%+v, limit from %d to %d", s, lo, hi)
	})
}

// A long incident (two minutes at a quarter of the capacity) must not
// teach the limiter that the queue it keeps is the dependency's normal
// latency (failsafe-go #127): the limit stays low to the end, and grows
// back when the capacity returns.
func TestLongIncidentKeepsTheBaseline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream(8, 20*time.Millisecond)
		l := adaptive.New()
		var tl timeline
		begin := time.Now()
		res := load(l, u, 200, 134*time.Second, 3*time.Second, func(at time.Duration) {
			switch at {
			case 2 * time.Second:
				u.set(1, 20*time.Millisecond)
			case 122 * time.Second:
				u.set(8, 20*time.Millisecond)
			}
			tl.record(at, l.Limit())
		})
		for from := 10 * time.Second; from < 122*time.Second; from += 10 * time.Second {
			to := min(from+10*time.Second, 122*time.Second)
			s := summarise(res, begin, from, to)
			perSecond := float64(s.ok) / (to - from).Seconds()
			if perSecond < 0.95*50 || s.p99 > 200*time.Millisecond {
				t.Errorf("from %v to %v into the run: %.1f successes/s, p99 %v; want at least 47.5/s and at most 200ms", from, to, perSecond, s.p99)
			}
		}
		if _, hi := tl.between(100*time.Second, 122*time.Second); hi > 10 {
			t.Errorf("late in the incident the limit rose to %d, want at most 10", hi)
		}
		after := summarise(res, begin, 122500*time.Millisecond, 134*time.Second)
		if after.ok != after.calls {
			t.Errorf("from 500ms after the recovery: %d of %d calls succeeded, want all", after.ok, after.calls)
		}
	})
}

// A dependency that becomes slower for good, without queueing (every call
// takes 50ms instead of 10ms, however many run at once), is first taken
// for an overload; the probe after 30s learns the new baseline and the
// limit grows back to carry the demand.
func TestSlowerForGoodGrowsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream(10_000, 10*time.Millisecond)
		l := adaptive.New(adaptive.WithInitialLimit(5))
		var tl timeline
		changed := false
		begin := time.Now()
		res := load(l, u, 200, 50*time.Second, 3*time.Second, func(at time.Duration) {
			if at >= 5*time.Second && !changed {
				u.set(10_000, 50*time.Millisecond)
				changed = true
			}
			tl.record(at, l.Limit())
		})
		late := summarise(res, begin, 40*time.Second, 50*time.Second)
		if late.ok != late.calls {
			t.Errorf("from 35s after the change: %d of %d calls succeeded, want all", late.ok, late.calls)
		}
		lo, _ := tl.between(5*time.Second, 30*time.Second)
		_, hi := tl.between(40*time.Second, 50*time.Second)
		t.Logf("limit cut to %d, back to %d; %+v", lo, hi, late)
	})
}

// Fan-out on a healthy dependency: bursts of 50 parallel calls, a second
// apart, on top of a steady trickle. Nothing is overloaded; nothing may be
// turned away once the limiter has seen a burst.
func TestFanOutBursts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream(100, 20*time.Millisecond)
		l := adaptive.New()
		op := u.call
		rejected, total := 0, 0
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 20 {
			for range 50 {
				wg.Go(func() {
					err := l.Do(context.Background(), op)
					mu.Lock()
					defer mu.Unlock()
					if i > 0 {
						total++
						if err != nil {
							rejected++
						}
					}
				})
			}
			for range 20 { // the trickle: one call every 50ms
				l.Do(context.Background(), op)
				time.Sleep(50 * time.Millisecond)
			}
		}
		wg.Wait()
		if rejected > 0 {
			t.Errorf("%d of %d calls of the bursts after the first turned away, want none", rejected, total)
		}
	})
}
