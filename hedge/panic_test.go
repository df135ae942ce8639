package hedge_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/hedge"
)

// panicOp is an operation whose first attempt panics after a while, and
// whose hedges wait for their context; it records each attempt that ran.
type panicOp struct {
	after time.Duration // when the first attempt panics

	mu      sync.Mutex
	started []int         // attempt numbers, in the order they started
	ended   map[int]error // the context's cause when a hedge returned
}

func (o *panicOp) op(ctx context.Context) error {
	n := resilience.AttemptNumber(ctx)
	o.mu.Lock()
	o.started = append(o.started, n)
	o.mu.Unlock()
	if n == 1 {
		time.Sleep(o.after)
		panic("op panicked")
	}
	<-ctx.Done()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended == nil {
		o.ended = make(map[int]error)
	}
	o.ended[n] = context.Cause(ctx)
	return ctx.Err()
}

// doRecover runs p.Do and returns what it panicked with.
func doRecover(p *hedge.Policy, op func(context.Context) error) (r any) {
	defer func() { r = recover() }()
	_ = p.Do(idempotent(), op)
	return nil
}

// Nothing starts after Do panicked: the hedge timer armed before the first
// attempt is stopped when that attempt panics, and hedges that were
// running are cancelled and have returned before the panic leaves Do.
func TestFirstAttemptPanicStartsNothingAfter(t *testing.T) {
	tests := []struct {
		name    string
		after   time.Duration // when the first attempt panics
		running int           // hedges running when it does
	}{
		{"before the delay", 10 * ms, 0},
		{"after one hedge", 70 * ms, 1},
		{"after two hedges", 120 * ms, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := &panicOp{after: tt.after}
				p := hedge.New(hedge.WithDelay(50*ms), hedge.WithMaxHedges(3))
				if r := doRecover(p, o.op); r != "op panicked" {
					t.Fatalf("Do panicked with %v, want the op's panic", r)
				}
				o.mu.Lock()
				started, ended := len(o.started), len(o.ended)
				o.mu.Unlock()
				if want := 1 + tt.running; started != want || ended != tt.running {
					t.Fatalf("when Do panicked: %d attempts started, %d hedges returned; want %d, %d",
						started, ended, want, tt.running)
				}
				time.Sleep(time.Second) // well past every delay
				synctest.Wait()
				o.mu.Lock()
				defer o.mu.Unlock()
				if len(o.started) != started {
					t.Fatalf("attempts %v started, %d of them after Do panicked", o.started, len(o.started)-started)
				}
				for n, cause := range o.ended {
					if cause == nil {
						t.Errorf("hedge %d returned with a live context", n)
					}
				}
			})
		})
	}
}

// A first attempt that calls runtime.Goexit (t.FailNow in a test's
// operation) unwinds Do as a panic does: nothing starts after.
func TestFirstAttemptGoexitStartsNothingAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var started []int
		p := hedge.New(hedge.WithDelay(50*ms), hedge.WithMaxHedges(3))
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			_ = p.Do(idempotent(), func(ctx context.Context) error {
				n := resilience.AttemptNumber(ctx)
				mu.Lock()
				started = append(started, n)
				mu.Unlock()
				if n == 1 {
					time.Sleep(70 * ms) // one hedge started
					runtime.Goexit()
				}
				<-ctx.Done()
				return ctx.Err()
			})
		}()
		<-exited
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(started) != 2 {
			t.Fatalf("attempts %v started, want [1 2]: none after Do unwound", started)
		}
	})
}
