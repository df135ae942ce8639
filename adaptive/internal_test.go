package adaptive

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// A pause of the client's own process (everything stopped for 3.5s, the
// upstream healthy) is not the dependency's latency: the calls that span
// it are not timed, and the limit does not move.
// (A test of the package itself, to start a window as the pause starts.) Closed-loop workers keep
// the limiter at its limit, so that a sample taken would cut it.
func TestClientPauseIsNotLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(WithInitialLimit(10))
		var pausedUntil atomic.Int64 // Unix nanoseconds
		op := func(ctx context.Context) error {
			time.Sleep(10 * time.Millisecond)
			if d := time.Until(time.Unix(0, pausedUntil.Load())); d > 0 {
				time.Sleep(d) // the reply is there, but the process is stopped
			}
			return nil
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := l.Do(context.Background(), op); err != nil {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		time.Sleep(2*time.Second + 5*time.Millisecond) // every worker in the middle of a call
		before := l.Limit()
		// The pause starts with a window, so that the calls that span it are
		// the window's only samples.
		l.mu.Lock()
		l.est.restart(time.Now())
		l.mu.Unlock()
		pausedUntil.Store(time.Now().Add(3500 * time.Millisecond).UnixNano())
		time.Sleep(3500 * time.Millisecond)
		low := before
		for range 20 {
			time.Sleep(50 * time.Millisecond)
			low = min(low, l.Limit())
		}
		close(stop)
		wg.Wait()
		if low < before {
			t.Errorf("after the pause the limit fell to %d, want at least %d as before it", low, before)
		}
	})
}

// Only calls that say something of the dependency's queue are timed: not
// the caller's cancellation, not failures; a call that ran out of time is.
func TestWhatIsTimed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tests := []struct {
			name  string
			op    func(ctx context.Context) error
			timed bool
		}{
			{"success", func(context.Context) error { time.Sleep(time.Second); return nil }, true},
			{"rejected by the dependency (a 4xx)", func(context.Context) error {
				time.Sleep(time.Second)
				return resilience.Mark(errors.New("404"), resilience.KindRejected)
			}, true},
			{"out of time", func(context.Context) error { time.Sleep(time.Second); return context.DeadlineExceeded }, true},
			{"failure", func(context.Context) error { time.Sleep(time.Second); return errors.New("connection reset") }, false},
			{"the caller cancelled", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, false},
		}
		for _, tt := range tests {
			l := New()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(1500*time.Millisecond, cancel)
			l.Do(ctx, tt.op)
			cancel()
			l.mu.Lock()
			n := l.est.n
			l.mu.Unlock()
			if timed := n == 1; timed != tt.timed {
				t.Errorf("%s: timed %v, want %v", tt.name, timed, tt.timed)
			}
		}
	})
}

// The calls that fell due while the process was paused arrive at once when
// it continues (as the requests a stalled service accepted would): the
// limiter lets them all in, even past its maximum, and times none of them.
func TestCatchUpAfterAPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(WithInitialLimit(10))
		var pausedUntil atomic.Int64 // Unix nanoseconds
		op := func(ctx context.Context) error {
			time.Sleep(20 * time.Millisecond)
			if d := time.Until(time.Unix(0, pausedUntil.Load())); d > 0 {
				time.Sleep(d)
			}
			return nil
		}
		var wg sync.WaitGroup
		for range 5 { // in flight across the pause
			wg.Go(func() { l.Do(context.Background(), op) })
		}
		time.Sleep(5 * time.Millisecond)
		pausedUntil.Store(time.Now().Add(3500 * time.Millisecond).UnixNano())
		time.Sleep(3500 * time.Millisecond)
		var rejected atomic.Int64
		for range 500 { // the backlog, past the maximum limit (200)
			wg.Go(func() {
				if err := l.Do(context.Background(), op); err != nil {
					rejected.Add(1)
				}
			})
		}
		wg.Wait()
		if n := rejected.Load(); n > 0 {
			t.Errorf("%d of the 500 calls that fell due during the pause turned away, want none", n)
		}
		l.mu.Lock()
		n := l.est.n
		l.mu.Unlock()
		if n != 0 {
			t.Errorf("%d calls of the catch-up timed, want none", n)
		}
		// After the catch-up, the limit applies again.
		time.Sleep(4 * time.Second)
		l.Do(context.Background(), op)
		l.mu.Lock()
		catchingUp := !l.catchUp.IsZero()
		l.mu.Unlock()
		if catchingUp {
			t.Error("still catching up 4s after a 3.5s pause")
		}
	})
}

// A busy client paused between calls (nothing in flight: a fast dependency
// at 200 calls/s has less than one call in flight on average) gets the
// same catch-up: the scenario suite's starved client lost 22% of its
// calls, the backlog past the maximum limit, before.
func TestCatchUpAfterAPauseWithNothingInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New()
		op := func(ctx context.Context) error { time.Sleep(time.Millisecond); return nil }
		for range 200 { // 200 calls/s, one at a time
			l.Do(context.Background(), op)
			time.Sleep(4 * time.Millisecond)
		}
		time.Sleep(1200 * time.Millisecond) // the pause
		var wg sync.WaitGroup
		var rejected atomic.Int64
		for range 240 { // the backlog, past the maximum limit (200)
			wg.Go(func() {
				if err := l.Do(context.Background(), func(context.Context) error { time.Sleep(10 * time.Millisecond); return nil }); err != nil {
					rejected.Add(1)
				}
			})
		}
		wg.Wait()
		if n := rejected.Load(); n > 0 {
			t.Errorf("%d of the 240 calls that fell due during the pause turned away, want none", n)
		}
	})
}

// A client that is merely quiet for a second between sparse calls is not
// paused: its next calls are limited as before.
func TestNoCatchUpForASparseClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(WithLimits(2, 2))
		op := func(ctx context.Context) error { time.Sleep(time.Millisecond); return nil }
		for i := range 5 { // one call every 2s
			l.Do(context.Background(), op)
			l.mu.Lock()
			catchingUp := !l.catchUp.IsZero()
			l.mu.Unlock()
			if catchingUp {
				t.Fatalf("call %d: a client making one call every 2s taken for a paused one", i)
			}
			time.Sleep(2 * time.Second)
		}
	})
}
