package adaptive_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/resilience-go/resilience"
)

// upstream is a naive dependency in a synctest bubble: one FIFO queue,
// unbounded, served by a number of workers with a fixed service time, that
// never checks whether its caller is still there. Phases change its
// workers, service time and slow tail over time.
type upstream struct {
	mu      sync.Mutex
	free    []time.Time // when each worker is next free
	service time.Duration
	// slowEvery > 0 makes every slowEvery-th call take slow instead,
	// served by a worker of its own (a tail, not a queue).
	slowEvery, n int
	slow         time.Duration
	pausedUntil  time.Time // nothing completes before (a pause of the client)
	wasted       int       // calls served after their caller gave up
}

func newUpstream(workers int, service time.Duration) *upstream {
	return &upstream{free: make([]time.Time, workers), service: service}
}

func (u *upstream) set(workers int, service time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	free := make([]time.Time, workers)
	for i := range free {
		free[i] = now
		if i < len(u.free) && u.free[i].After(now) {
			free[i] = u.free[i] // work already queued stays queued
		}
	}
	u.free, u.service = free, service
}

func (u *upstream) call(ctx context.Context) error {
	u.mu.Lock()
	now := time.Now()
	var done time.Time
	u.n++
	if u.slowEvery > 0 && u.n%u.slowEvery == 0 {
		done = now.Add(u.slow)
	} else {
		w := 0
		for i := range u.free {
			if u.free[i].Before(u.free[w]) {
				w = i
			}
		}
		done = later(u.free[w], now).Add(u.service)
		u.free[w] = done
	}
	done = later(done, u.pausedUntil)
	u.mu.Unlock()
	t := time.NewTimer(time.Until(done))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		u.mu.Lock()
		u.wasted++
		u.mu.Unlock()
		return ctx.Err()
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// result is one call of a load run.
type result struct {
	start   time.Time
	latency time.Duration
	err     error
}

// load offers rate calls per second to p for d, each with deadline, calling
// at(elapsed) before each call so that the test can change the upstream,
// and returns the results once every call has ended.
func load(p resilience.Policy, u *upstream, rate int, d, deadline time.Duration, at func(time.Duration)) []result {
	var (
		mu  sync.Mutex
		res []result
		wg  sync.WaitGroup
	)
	every := time.Second / time.Duration(rate)
	for i := 0; time.Duration(i)*every < d; i++ {
		if at != nil {
			at(time.Duration(i) * every)
		}
		wg.Go(func() {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			err := p.Do(ctx, u.call)
			mu.Lock()
			res = append(res, result{start, time.Since(start), err})
			mu.Unlock()
		})
		time.Sleep(every)
	}
	wg.Wait()
	return res
}

// stats summarises the calls that started within [from, to) after begin.
type stats struct {
	calls, ok int
	p99       time.Duration
}

func summarise(res []result, begin time.Time, from, to time.Duration) stats {
	var s stats
	var lat []time.Duration
	for _, r := range res {
		at := r.start.Sub(begin)
		if at < from || at >= to {
			continue
		}
		s.calls++
		if r.err == nil {
			s.ok++
			lat = append(lat, r.latency)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.p99 = lat[(len(lat)*99+99)/100-1]
	}
	return s
}

// timeline records a limiter's limit every 50ms while a run lasts.
type timeline struct {
	mu     sync.Mutex
	points []struct {
		at    time.Duration
		limit int
	}
}

func (tl *timeline) record(at time.Duration, limit int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.points = append(tl.points, struct {
		at    time.Duration
		limit int
	}{at, limit})
}

// between returns the lowest and highest limit recorded within [from, to).
func (tl *timeline) between(from, to time.Duration) (lo, hi int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	lo = 1 << 30
	for _, p := range tl.points {
		if p.at >= from && p.at < to {
			lo, hi = min(lo, p.limit), max(hi, p.limit)
		}
	}
	return lo, hi
}
