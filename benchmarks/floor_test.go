package benchmarks

import (
	"context"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/ratelimiter"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	rbreaker "github.com/resilience-go/resilience/breaker"
	rbulkhead "github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

// BenchmarkFloor is the per-call cost of five protections on the success
// path: the dependencies called directly, in order (the floor a library
// built on them cannot go below without doing less), beside this library's
// Chain of the same five policies and failsafe-go's equivalent. The limits
// are set so that nothing ever rejects or waits.
func BenchmarkFloor(b *testing.B) {
	const (
		bigRate  = rate.Limit(1e12)
		bigBurst = 1 << 30
		slots    = 1 << 20
	)
	op := func(context.Context) error { return nil }

	b.Run("floor", func(b *testing.B) {
		lim := rate.NewLimiter(bigRate, bigBurst)
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{})
		sem := semaphore.NewWeighted(slots)
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := floorCall(ctx, lim, cb, sem, op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("resilience", func(b *testing.B) {
		p := resilience.Chain(
			ratelimit.New(bigRate, bigBurst),
			timeout.New(time.Second),
			retry.New(),
			rbreaker.New(),
			rbulkhead.New(slots),
		)
		ctx := context.Background()
		value := func(context.Context) (struct{}, error) { return struct{}{}, nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := resilience.Do(ctx, p, value); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[any](
			ratelimiter.NewBursty[any](bigBurst, time.Nanosecond),
			fstimeout.New[any](time.Second),
			retrypolicy.NewWithDefaults[any](),
			circuitbreaker.NewWithDefaults[any](),
			bulkhead.New[any](slots),
		)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := ex.RunWithExecution(func(e failsafe.Execution[any]) error {
					return op(e.Context())
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkFloorPaired is BenchmarkFloor's floor and ours, sequentially,
// in one loop: blocks of 256 calls of each in turn (in turns first), each
// block timed apart, so that what else runs on the machine falls on both
// alike and their ratio is steadier than two benchmarks run one after the
// other. It reports each one's time per call and the ratio (ours over the
// floor; at most 1 is the target).
func BenchmarkFloorPaired(b *testing.B) {
	const (
		bigRate  = rate.Limit(1e12)
		bigBurst = 1 << 30
		slots    = 1 << 20
		block    = 256
	)
	op := func(context.Context) error { return nil }
	lim := rate.NewLimiter(bigRate, bigBurst)
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{})
	sem := semaphore.NewWeighted(slots)
	p := resilience.Chain(
		ratelimit.New(bigRate, bigBurst),
		timeout.New(time.Second),
		retry.New(),
		rbreaker.New(),
		rbulkhead.New(slots),
	)
	value := func(context.Context) (struct{}, error) { return struct{}{}, nil }
	ctx := context.Background()
	run := [2]func() error{
		func() error { return floorCall(ctx, lim, cb, sem, op) },
		func() error { _, err := resilience.Do(ctx, p, value); return err },
	}
	var spent [2]time.Duration
	blocks := 0
	for b.Loop() {
		for j := range 2 {
			k := (blocks + j) % 2
			start := time.Now()
			for range block {
				if err := run[k](); err != nil {
					b.Fatal(err)
				}
			}
			spent[k] += time.Since(start)
		}
		blocks++
	}
	calls := float64(blocks * block)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(spent[0].Nanoseconds())/calls, "floor-ns/call")
	b.ReportMetric(float64(spent[1].Nanoseconds())/calls, "ours-ns/call")
	b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "ours/floor")
}

// floorCall is what the five protections cost when a caller writes them
// out by hand: the least a library built on these dependencies can do.
func floorCall(ctx context.Context, lim *rate.Limiter, cb *gobreaker.CircuitBreaker[struct{}], sem *semaphore.Weighted, op func(context.Context) error) error {
	if !lim.Allow() {
		return errFloorRejected
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	bo := backoff.NewExponentialBackOff()
	_ = bo // made on every call, as a retry loop does before its first attempt
	_, err := cb.Execute(func() (struct{}, error) {
		if !sem.TryAcquire(1) {
			return struct{}{}, errFloorRejected
		}
		defer sem.Release(1)
		return struct{}{}, op(ctx)
	})
	return err
}

var errFloorRejected = floorError("floor: rejected")

type floorError string

func (e floorError) Error() string { return string(e) }
