package shed_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/shed"
)

// result is what one Acquire returned.
type result struct {
	name    string
	release func()
	err     error
}

// acquire starts an Acquire of priority p in a goroutine and returns the
// channel of its result.
func acquire(ctx context.Context, s *shed.Shedder, name string, p shed.Priority, wg *sync.WaitGroup) <-chan result {
	ch := make(chan result, 1)
	wg.Go(func() {
		rel, err := s.Acquire(ctx, p)
		ch <- result{name, rel, err}
	})
	return ch
}

// wantReason fails the test unless err is a *shed.RejectedError for reason.
func wantReason(t *testing.T, err error, reason shed.Reason) *shed.RejectedError {
	t.Helper()
	var re *shed.RejectedError
	if !errors.As(err, &re) || !errors.Is(err, shed.ErrShed) {
		t.Fatalf("error %v, want a *shed.RejectedError matching ErrShed", err)
	}
	if re.Reason != reason {
		t.Fatalf("reason %q, want %q", re.Reason, reason)
	}
	if re.RetryAfter < time.Second {
		t.Errorf("RetryAfter %v, want at least 1s", re.RetryAfter)
	}
	return re
}

func mustAcquire(t *testing.T, s *shed.Shedder, p shed.Priority) func() {
	t.Helper()
	rel, err := s.Acquire(context.Background(), p)
	if err != nil {
		t.Fatalf("Acquire(%v): %v", p, err)
	}
	return rel
}

func TestFreedSlotsGoByPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := shed.New(shed.Fixed(1), shed.WithQueue(10, time.Minute))
		rel := mustAcquire(t, s, shed.Default)
		var wg sync.WaitGroup
		ctx := context.Background()
		// Queued in the order sheddable, default, critical, sheddable.
		sh1 := acquire(ctx, s, "sheddable-1", shed.Sheddable, &wg)
		synctest.Wait()
		def := acquire(ctx, s, "default", shed.Default, &wg)
		synctest.Wait()
		crit := acquire(ctx, s, "critical", shed.Critical, &wg)
		synctest.Wait()
		sh2 := acquire(ctx, s, "sheddable-2", shed.Sheddable, &wg)
		synctest.Wait()
		if running, queued := s.InFlight(); running != 1 || queued != 4 {
			t.Fatalf("InFlight = %d, %d; want 1, 4", running, queued)
		}
		var order []string
		for range 4 {
			rel()
			rel() // a second call does nothing
			synctest.Wait()
			var r result
			select {
			case r = <-crit:
			case r = <-def:
			case r = <-sh1:
			case r = <-sh2:
			default:
				t.Fatal("no waiter got the freed slot")
			}
			if r.err != nil {
				t.Fatalf("%s: %v", r.name, r.err)
			}
			order = append(order, r.name)
			rel = r.release
		}
		rel()
		wg.Wait()
		if got, want := strings.Join(order, " "), "critical default sheddable-1 sheddable-2"; got != want {
			t.Errorf("admitted in the order %q, want %q", got, want)
		}
		if running, queued := s.InFlight(); running != 0 || queued != 0 {
			t.Errorf("InFlight = %d, %d at the end; want 0, 0", running, queued)
		}
	})
}

func TestFullQueueShedsLowerPriorityFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := shed.New(shed.Fixed(1), shed.WithQueue(2, time.Minute))
		rel := mustAcquire(t, s, shed.Default)
		var wg sync.WaitGroup
		ctx := context.Background()
		sh1 := acquire(ctx, s, "sheddable-1", shed.Sheddable, &wg)
		synctest.Wait()
		sh2 := acquire(ctx, s, "sheddable-2", shed.Sheddable, &wg)
		synctest.Wait()

		// A critical request pushes out the newest sheddable one.
		crit := acquire(ctx, s, "critical", shed.Critical, &wg)
		synctest.Wait()
		wantReason(t, (<-sh2).err, shed.ReasonPriority)

		// A sheddable request finds no one lower to push out.
		_, err := s.Acquire(ctx, shed.Sheddable)
		wantReason(t, err, shed.ReasonQueueFull)

		// A default request pushes out the last sheddable one.
		def := acquire(ctx, s, "default", shed.Default, &wg)
		synctest.Wait()
		wantReason(t, (<-sh1).err, shed.ReasonPriority)

		// Critical pushes out default; then the queue is all critical.
		crit2 := acquire(ctx, s, "critical-2", shed.Critical, &wg)
		synctest.Wait()
		wantReason(t, (<-def).err, shed.ReasonPriority)
		_, err = s.Acquire(ctx, shed.Critical)
		re := wantReason(t, err, shed.ReasonQueueFull)
		if re.Priority != shed.Critical {
			t.Errorf("Priority %v, want critical", re.Priority)
		}

		rel()
		synctest.Wait()
		r := <-crit
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.release()
		synctest.Wait()
		r = <-crit2
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.release()
		wg.Wait()
	})
}

func TestQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := shed.New(shed.Fixed(1), shed.WithQueue(1, 80*time.Millisecond))
		rel := mustAcquire(t, s, shed.Default)
		defer rel()
		start := time.Now()
		_, err := s.Acquire(context.Background(), shed.Critical)
		wantReason(t, err, shed.ReasonQueueTimeout)
		if got := time.Since(start); got != 80*time.Millisecond {
			t.Errorf("shed after %v, want the maximum wait, 80ms", got)
		}
	})
}

func TestCanceledWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := shed.New(shed.Fixed(1))
		rel := mustAcquire(t, s, shed.Default)
		defer rel()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		ch := acquire(ctx, s, "queued", shed.Default, &wg)
		synctest.Wait()
		cancel()
		err := (<-ch).err
		wantReason(t, err, shed.ReasonCanceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v does not match context.Canceled", err)
		}
		if _, queued := s.InFlight(); queued != 0 {
			t.Errorf("%d still queued, want 0", queued)
		}
		// A context already done is never admitted, even with a free slot.
		s2 := shed.New(shed.Fixed(1))
		if _, err := s2.Acquire(ctx, shed.Critical); !errors.Is(err, context.Canceled) {
			t.Errorf("Acquire with a canceled context: %v, want context.Canceled", err)
		}
		wg.Wait()
	})
}

func TestNoQueue(t *testing.T) {
	s := shed.New(shed.Fixed(2), shed.WithQueue(0, 0))
	r1, r2 := mustAcquire(t, s, shed.Default), mustAcquire(t, s, shed.Sheddable)
	_, err := s.Acquire(context.Background(), shed.Critical)
	wantReason(t, err, shed.ReasonLimit)
	r1()
	r3 := mustAcquire(t, s, shed.Critical)
	r2()
	r3()
}

func TestDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := shed.New(shed.Fixed(1))
		rel := mustAcquire(t, s, shed.Default)
		var wg sync.WaitGroup
		queued := acquire(context.Background(), s, "queued", shed.Critical, &wg)
		synctest.Wait()

		drained := make(chan error, 1)
		wg.Go(func() { drained <- s.Drain(context.Background()) })
		synctest.Wait()
		wantReason(t, (<-queued).err, shed.ReasonDraining)
		_, err := s.Acquire(context.Background(), shed.Critical)
		wantReason(t, err, shed.ReasonDraining)
		if !s.Draining() {
			t.Error("Draining() = false during a drain")
		}
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v with a request in flight", err)
		default:
		}
		time.Sleep(time.Hour) // fake time: the drain waits as long as the request runs
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v with a request in flight", err)
		default:
		}
		rel()
		if err := <-drained; err != nil {
			t.Errorf("Drain = %v, want nil", err)
		}
		if err := s.Drain(context.Background()); !errors.Is(err, shed.ErrDraining) {
			t.Errorf("second Drain = %v, want ErrDraining", err)
		}
		wg.Wait()
	})
}

func TestDrainContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := shed.New(shed.Fixed(1))
		rel := mustAcquire(t, s, shed.Default)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Drain = %v, want context.DeadlineExceeded", err)
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("Drain returned after %v, want 5s", got)
		}
		rel() // releasing after an abandoned drain is fine
		if running, _ := s.InFlight(); running != 0 {
			t.Errorf("%d in flight, want 0", running)
		}
	})
}

// TestRetryAfterFromDrainRate checks that a shed request is told to come
// back after the time the queue takes to drain at the rate requests
// recently finished, rounded up, between 1s and the maximum.
func TestRetryAfterFromDrainRate(t *testing.T) {
	tests := []struct {
		name     string
		perSec   int // requests finished per second before the shed
		queue    int // requests waiting at the shed
		maxRetry time.Duration
		want     time.Duration
	}{
		{"nothing finished yet", 0, 20, 0, time.Second},
		{"fast drain", 100, 20, 0, time.Second},
		{"21 at 10/s", 10, 20, 0, 3 * time.Second},
		{"41 at 4/s", 4, 40, 0, 11 * time.Second},
		{"capped", 1, 40, 5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := []shed.Option{shed.WithQueue(tt.queue, time.Hour), shed.WithMaxRetryAfter(time.Minute)}
				if tt.maxRetry > 0 {
					opts[1] = shed.WithMaxRetryAfter(tt.maxRetry)
				}
				s := shed.New(shed.Fixed(1), opts...)
				// One second of requests finishing at perSec.
				for range tt.perSec {
					mustAcquire(t, s, shed.Default)()
					time.Sleep(time.Second / time.Duration(tt.perSec))
				}
				if tt.perSec == 0 {
					time.Sleep(time.Second)
				}
				rel := mustAcquire(t, s, shed.Default)
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for range tt.queue {
					acquire(ctx, s, "", shed.Critical, &wg)
				}
				synctest.Wait()
				_, err := s.Acquire(context.Background(), shed.Sheddable)
				re := wantReason(t, err, shed.ReasonQueueFull)
				if re.RetryAfter != tt.want {
					t.Errorf("RetryAfter %v, want %v", re.RetryAfter, tt.want)
				}
				cancel()
				wg.Wait()
				rel()
			})
		})
	}
}

func TestParsePriority(t *testing.T) {
	tests := []struct {
		in   string
		want shed.Priority
	}{
		{"critical", shed.Critical},
		{" Critical ", shed.Critical},
		{"SHEDDABLE", shed.Sheddable},
		{"default", shed.Default},
		{"", shed.Default},
		{"urgent", shed.Default},
		{"critical;q=1", shed.Default},
		{strings.Repeat("critical", 1000), shed.Default},
		{"critical" + strings.Repeat(" ", 1000), shed.Default},
	}
	for _, tt := range tests {
		if got := shed.ParsePriority(tt.in); got != tt.want {
			t.Errorf("ParsePriority(%.20q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for p, want := range map[shed.Priority]string{shed.Critical: "critical", shed.Default: "default", shed.Sheddable: "sheddable", 7: "default"} {
		if got := p.String(); got != want {
			t.Errorf("Priority(%d).String() = %q, want %q", p, got, want)
		}
	}
}

func TestOutOfRangePriorityIsClamped(t *testing.T) {
	s := shed.New(shed.Fixed(1), shed.WithQueue(0, 0))
	rel := mustAcquire(t, s, 100)
	_, err := s.Acquire(context.Background(), -100)
	if re := wantReason(t, err, shed.ReasonLimit); re.Priority != shed.Sheddable {
		t.Errorf("Priority %v, want sheddable", re.Priority)
	}
	rel()
}

func TestConstructorsPanic(t *testing.T) {
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"Fixed(0)", func() { shed.Fixed(0) }, "shed: Fixed: n must be at least 1, got 0"},
		{"New(nil)", func() { shed.New(nil) }, "shed: New: lim is nil"},
		{"negative queue", func() { shed.New(shed.Fixed(1), shed.WithQueue(-1, time.Second)) }, "shed: WithQueue: n must not be negative, got -1"},
		{"queue without wait", func() { shed.New(shed.Fixed(1), shed.WithQueue(1, 0)) }, "shed: WithQueue: maxWait must be positive, got 0s"},
		{"short retry-after", func() { shed.New(shed.Fixed(1), shed.WithMaxRetryAfter(time.Millisecond)) }, "shed: WithMaxRetryAfter: d must be at least 1s, got 1ms"},
		{"Middleware(nil)", func() { shed.Middleware(nil) }, "shed: Middleware: s is nil"},
		{"nil health check", func() { shed.Middleware(shed.New(shed.Fixed(1)), shed.WithHealthCheck(nil)) }, "shed: WithHealthCheck: f is nil"},
		{"nil priority", func() { shed.Middleware(shed.New(shed.Fixed(1)), shed.WithPriority(nil)) }, "shed: WithPriority: f is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Errorf("panic %v, want %q", got, tt.want)
				}
			}()
			tt.f()
		})
	}
}

// TestConcurrentNeverAboveLimit runs many goroutines through a Shedder
// and checks the bound and the bookkeeping (run it with -race).
func TestConcurrentNeverAboveLimit(t *testing.T) {
	const limit = 4
	s := shed.New(shed.Fixed(limit), shed.WithQueue(8, time.Second))
	var (
		mu              sync.Mutex
		running, maxRun int
		wg              sync.WaitGroup
	)
	for i := range 64 {
		wg.Go(func() {
			for range 50 {
				rel, err := s.Acquire(context.Background(), shed.Priority(i%3-1))
				if err != nil {
					continue
				}
				mu.Lock()
				running++
				maxRun = max(maxRun, running)
				mu.Unlock()
				mu.Lock()
				running--
				mu.Unlock()
				rel()
			}
		})
	}
	wg.Wait()
	if maxRun > limit {
		t.Errorf("%d ran at once, want at most %d", maxRun, limit)
	}
	if r, q := s.InFlight(); r != 0 || q != 0 {
		t.Errorf("InFlight = %d, %d at the end; want 0, 0", r, q)
	}
	// Every slot is free again.
	rels := make([]func(), limit)
	for i := range rels {
		rels[i] = mustAcquire(t, s, shed.Sheddable)
	}
	for _, r := range rels {
		r()
	}
}
