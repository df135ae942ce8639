package hedge_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/hedge"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errFlaky = errors.New("flaky")

func idempotent() context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: "api:443", Method: "GET", Idempotent: true})
}

// recorder is an operation whose attempts behave as scripted by attempt
// number, and which records when each started and how it ended.
type recorder struct {
	mu      sync.Mutex
	script  map[int]step
	started map[int]time.Duration
	ended   map[int]error // the context's error when the attempt returned
	start   time.Time
}

type step struct {
	after time.Duration // how long the attempt takes, unless cancelled
	err   error
}

func newRecorder(script map[int]step) *recorder {
	return &recorder{script: script, started: map[int]time.Duration{}, ended: map[int]error{}, start: time.Now()}
}

func (r *recorder) op(ctx context.Context) error {
	n := resilience.AttemptNumber(ctx)
	r.mu.Lock()
	r.started[n] = time.Since(r.start)
	s := r.script[n]
	r.mu.Unlock()
	t := time.NewTimer(s.after)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		r.mu.Lock()
		r.ended[n] = context.Cause(ctx)
		r.mu.Unlock()
		return ctx.Err()
	}
	r.mu.Lock()
	r.ended[n] = nil
	r.mu.Unlock()
	return s.err
}

func (r *recorder) startedAt() []time.Duration {
	var ds []time.Duration
	for n := 1; n <= len(r.started); n++ {
		ds = append(ds, r.started[n])
	}
	return ds
}

const ms = time.Millisecond

func TestFastFirstAttemptSendsNoHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder(map[int]step{1: {after: 10 * ms}})
		err := hedge.New(hedge.WithDelay(50*ms)).Do(idempotent(), r.op)
		if err != nil || len(r.started) != 1 {
			t.Fatalf("got %v after %d attempts, want success after 1", err, len(r.started))
		}
		if d := time.Since(r.start); d != 10*ms {
			t.Fatalf("returned after %v, want 10ms", d)
		}
	})
}

func TestSlowFirstAttemptIsHedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder(map[int]step{1: {after: 2 * time.Second}, 2: {after: 10 * ms}})
		err := hedge.New(hedge.WithDelay(50*ms)).Do(idempotent(), r.op)
		if err != nil {
			t.Fatal(err)
		}
		if want := []time.Duration{0, 50 * ms}; !slices.Equal(r.startedAt(), want) {
			t.Fatalf("attempts started at %v, want %v", r.startedAt(), want)
		}
		// The hedge's latency plus the delay, not the slow attempt's.
		if d := time.Since(r.start); d != 60*ms {
			t.Fatalf("returned after %v, want 60ms", d)
		}
		if cause := r.ended[1]; cause == nil || !strings.Contains(cause.Error(), "another attempt won") {
			t.Fatalf("the slow attempt ended with %v, want cancelled because the hedge won", cause)
		}
	})
}

func TestFailureSendsTheNextAttemptAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder(map[int]step{1: {after: 5 * ms, err: errFlaky}, 2: {after: 10 * ms}})
		if err := hedge.New(hedge.WithDelay(50*ms)).Do(idempotent(), r.op); err != nil {
			t.Fatal(err)
		}
		if want := []time.Duration{0, 5 * ms}; !slices.Equal(r.startedAt(), want) {
			t.Fatalf("attempts started at %v, want %v", r.startedAt(), want)
		}
	})
}

func TestUpToMaxHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := step{after: time.Second}
		r := newRecorder(map[int]step{1: slow, 2: slow, 3: slow, 4: slow})
		err := hedge.New(hedge.WithDelay(50*ms), hedge.WithMaxHedges(2)).Do(idempotent(), r.op)
		if err != nil {
			t.Fatal(err)
		}
		if want := []time.Duration{0, 50 * ms, 100 * ms}; !slices.Equal(r.startedAt(), want) {
			t.Fatalf("attempts started at %v, want %v", r.startedAt(), want)
		}
		if d := time.Since(r.start); d != time.Second {
			t.Fatalf("returned after %v, want 1s (the first attempt wins)", d)
		}
	})
}

func TestAllFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		last := resilience.Mark(errors.New("last"), resilience.KindTransient)
		r := newRecorder(map[int]step{1: {after: 100 * ms, err: errFlaky}, 2: {after: 80 * ms, err: last}})
		err := hedge.New(hedge.WithDelay(50*ms)).Do(idempotent(), r.op)
		var he *hedge.Error
		if !errors.As(err, &he) || he.Attempts != 2 || !errors.Is(err, hedge.ErrExhausted) || !errors.Is(err, last) {
			t.Fatalf("got %v, want a *hedge.Error after 2 attempts wrapping the last failure", err)
		}
		if want := "hedge: gave up after 2 attempt(s) (hedge: attempts exhausted): last"; err.Error() != want {
			t.Errorf("message %q, want %q", err.Error(), want)
		}
	})
}

func TestNonRetryableFailureWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notFound := resilience.Mark(errors.New("404"), resilience.KindRejected)
		r := newRecorder(map[int]step{1: {after: time.Second}, 2: {after: 10 * ms, err: notFound}})
		err := hedge.New(hedge.WithDelay(50*ms)).Do(idempotent(), r.op)
		if err != notFound || time.Since(r.start) != 60*ms {
			t.Fatalf("got %v after %v, want the hedge's 404 after 60ms", err, time.Since(r.start))
		}
	})
}

func TestNotHedged(t *testing.T) {
	tests := []struct {
		name string
		call resilience.Call
	}{
		{"not idempotent", resilience.Call{Method: "POST"}},
		{"not replayable", resilience.Call{Idempotent: true, NoRetry: errors.New("body too large")}},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			r := newRecorder(map[int]step{1: {after: time.Second, err: errFlaky}})
			err := hedge.New(hedge.WithDelay(50*ms)).Do(resilience.WithCall(context.Background(), tt.call), r.op)
			if err != errFlaky || len(r.started) != 1 {
				t.Fatalf("%s: got %v after %d attempts, want the error unchanged after 1", tt.name, err, len(r.started))
			}
		})
	}
}

func TestSequentialCallsDoNotOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true, Sequential: true})
		r := newRecorder(map[int]step{1: {after: time.Second, err: errFlaky}, 2: {after: time.Second}})
		parallel := false
		err := hedge.New(hedge.WithDelay(50*ms)).Do(ctx, func(ctx context.Context) error {
			parallel = parallel || resilience.Parallel(ctx)
			return r.op(ctx)
		})
		if err != nil || parallel {
			t.Fatalf("got %v (parallel: %v), want success with sequential attempts", err, parallel)
		}
		if want := []time.Duration{0, time.Second}; !slices.Equal(r.startedAt(), want) {
			t.Fatalf("attempts started at %v, want %v: the second only once the first failed", r.startedAt(), want)
		}
	})
}

func TestCallerCancellationStopsEveryAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(idempotent())
		slow := step{after: time.Hour}
		r := newRecorder(map[int]step{1: slow, 2: slow, 3: slow})
		time.AfterFunc(200*ms, cancel)
		err := hedge.New(hedge.WithDelay(50*ms), hedge.WithMaxHedges(2)).Do(ctx, r.op)
		if err != context.Canceled {
			t.Fatalf("got %v, want the caller's context.Canceled", err)
		}
		if time.Since(r.start) != 200*ms || len(r.ended) != 3 {
			t.Fatalf("returned after %v with %d attempts ended, want 200ms and all 3", time.Since(r.start), len(r.ended))
		}
		for n, cause := range r.ended {
			if cause != context.Canceled {
				t.Errorf("attempt %d ended with %v, want the caller's cancellation", n, cause)
			}
		}
	})
}

// Each attempt holds a resource (a bulkhead slot, a response body): the
// losers' are released before Do returns, the winner's when its result is
// done.
func TestLoserReleasedWinnerHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := idempotent()
		var (
			mu        sync.Mutex
			released  []int
			discarded []int
			winnerCtx context.Context
			closeBody func(error)
		)
		r := newRecorder(map[int]step{1: {after: time.Second}, 2: {after: 10 * ms}})
		err := hedge.New(hedge.WithDelay(50*ms)).Do(ctx, func(actx context.Context) error {
			n := resilience.AttemptNumber(actx)
			err := r.op(actx)
			// A response arrived (the loser's too, just as it was
			// cancelled): its body is held until closed.
			done := resilience.Hold(actx, func() { mu.Lock(); discarded = append(discarded, n); mu.Unlock() })
			resilience.Defer(actx, func(error) { mu.Lock(); released = append(released, n); mu.Unlock() })
			if n == 2 {
				winnerCtx, closeBody = actx, done
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(discarded, []int{1}) || !slices.Equal(released, []int{1}) {
			t.Fatalf("discarded %v, released %v; want only the loser, 1", discarded, released)
		}
		if winnerCtx.Err() != nil {
			t.Fatal("the winner's context was cancelled while its result is held")
		}
		if !resilience.Held(ctx) {
			t.Fatal("the winner's result must be held by the call")
		}
		// The caller closes the body: the winner's resources go, and its
		// context with them.
		closeBody(nil)
		if !slices.Equal(released, []int{1, 2}) || winnerCtx.Err() == nil {
			t.Fatalf("after the body was closed: released %v, winner's context %v", released, winnerCtx.Err())
		}
	})
}

func TestBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := budget.New(budget.WithCapacity(10), budget.WithCost(5), budget.WithReward(1))
		p := hedge.New(hedge.WithDelay(50*ms), hedge.WithBudget(b))

		// A hedge that wins is refunded, and the call earns: 10 - 5 + 5 + 1, capped.
		r := newRecorder(map[int]step{1: {after: time.Second}, 2: {after: 10 * ms}})
		if err := p.Do(idempotent(), r.op); err != nil || b.Tokens() != 10 {
			t.Fatalf("got %v with %d tokens left, want success and 10", err, b.Tokens())
		}
		// A hedge that loses is not: 10 - 5 + 1.
		r = newRecorder(map[int]step{1: {after: 60 * ms}, 2: {after: time.Second}})
		if err := p.Do(idempotent(), r.op); err != nil || b.Tokens() != 6 {
			t.Fatalf("got %v with %d tokens left, want success and 6", err, b.Tokens())
		}
		b.TryWithdraw() // 1 left
		// Over budget: no hedge; a slow call stays slow...
		r = newRecorder(map[int]step{1: {after: time.Second}, 2: {after: 10 * ms}})
		if err := p.Do(idempotent(), r.op); err != nil || len(r.started) != 1 {
			t.Fatalf("got %v after %d attempts, want success after 1", err, len(r.started))
		}
		// ...and a failed one fails with the reason.
		r = newRecorder(map[int]step{1: {after: 10 * ms, err: errFlaky}})
		err := p.Do(idempotent(), r.op)
		var he *hedge.Error
		if !errors.As(err, &he) || he.Attempts != 1 || !errors.Is(err, budget.ErrExhausted) || !errors.Is(err, errFlaky) {
			t.Fatalf("got %v, want a *hedge.Error for the budget after 1 attempt", err)
		}
	})
}

func TestDelayQuantile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.New(hedge.WithDelay(time.Second), hedge.WithDelayQuantile(0.5, 100))
		// 20 calls of 10ms..200ms teach the policy its median, 100ms.
		for i := 1; i <= 20; i++ {
			r := newRecorder(map[int]step{1: {after: time.Duration(i) * 10 * ms}})
			if err := p.Do(idempotent(), r.op); err != nil || len(r.started) != 1 {
				t.Fatalf("call %d: %v after %d attempts, want 1 (the fixed delay is 1s)", i, err, len(r.started))
			}
		}
		r := newRecorder(map[int]step{1: {after: time.Second}, 2: {after: 10 * ms}})
		if err := p.Do(idempotent(), r.op); err != nil {
			t.Fatal(err)
		}
		if want := []time.Duration{0, 100 * ms}; !slices.Equal(r.startedAt(), want) {
			t.Fatalf("attempts started at %v, want %v (the observed median)", r.startedAt(), want)
		}
	})
}

func TestManyConcurrentCalls(t *testing.T) {
	// Under -race: many calls with overlapping attempts sharing a policy
	// and a budget.
	b := budget.New()
	p := hedge.New(hedge.WithDelay(ms), hedge.WithMaxHedges(2), hedge.WithBudget(b), hedge.WithDelayQuantile(0.5, 50))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			for j := range 20 {
				var err error
				if (i+j)%3 == 0 {
					err = errFlaky
				}
				p.Do(idempotent(), func(ctx context.Context) error {
					select {
					case <-time.After(time.Duration(resilience.AttemptNumber(ctx)) * ms):
					case <-ctx.Done():
						return ctx.Err()
					}
					return err
				})
			}
		})
	}
	wg.Wait()
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		opt  hedge.Option
		want string
	}{
		{hedge.WithDelay(0), "hedge: WithDelay"},
		{hedge.WithDelayQuantile(0, 10), "hedge: WithDelayQuantile"},
		{hedge.WithDelayQuantile(1, 10), "hedge: WithDelayQuantile"},
		{hedge.WithDelayQuantile(0.5, 0), "hedge: WithDelayQuantile"},
		{hedge.WithMaxHedges(0), "hedge: WithMaxHedges"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r, _ := recover().(string)
				if !strings.HasPrefix(r, tt.want) {
					t.Errorf("got panic %q, want one starting %q", r, tt.want)
				}
			}()
			hedge.New(tt.opt)
		}()
	}
}

// An attempt turned away (an open breaker) is not replaced: the call fails
// fast with the rejection, and the budget is untouched.
func TestPushbackIsNotReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := budget.New()
		open := resilience.Mark(errors.New("breaker: circuit open"), resilience.KindRefused)
		calls := 0
		err := hedge.New(hedge.WithBudget(b), hedge.WithMaxHedges(3)).Do(idempotent(), func(context.Context) error {
			calls++
			return open
		})
		if err != open || calls != 1 || b.Tokens() != budget.DefaultCapacity {
			t.Fatalf("got %v after %d attempts, %d tokens; want the rejection unchanged after 1, budget full", err, calls, b.Tokens())
		}
		// A hedge turned away while the first attempt runs drops out.
		r := newRecorder(map[int]step{1: {after: time.Second}, 2: {err: open}, 3: {after: 10 * ms}})
		err = hedge.New(hedge.WithDelay(50*ms), hedge.WithMaxHedges(2)).Do(idempotent(), r.op)
		if err != nil {
			t.Fatal(err)
		}
		if want := []time.Duration{0, 50 * ms, 100 * ms}; !slices.Equal(r.startedAt(), want) {
			t.Fatalf("attempts started at %v, want %v: the rejected hedge replaced only when the delay passed", r.startedAt(), want)
		}
	})
}

// The dependency's requested delay (Retry-After) holds the next attempt
// until it ends, whether the attempt failed (a 503 with Retry-After) or was
// turned away (a 429; a 409 for the call's key still in flight) with no
// other attempt running; the policy's own hedge delay does not send one
// sooner. (Before, a failure's delay was ignored, the next attempt sent at
// once, and a turned-away attempt's error returned as it was.)
func TestPushbackDelaysTheNextAttempt(t *testing.T) {
	unavailable := resilience.MarkRetryAfter(errors.New("503"), resilience.KindTransient, time.Second)
	inFlight := resilience.MarkScopedRetryAfter(errors.New("409 in flight"), resilience.KindThrottled, time.Second, resilience.PushbackCall)
	for _, tt := range []struct {
		name   string
		script map[int]step
		want   []time.Duration
	}{
		{"transient failure", map[int]step{1: {err: unavailable}}, []time.Duration{0, time.Second}},
		{"turned away", map[int]step{1: {err: inFlight}}, []time.Duration{0, time.Second}},
		{"turned away while another runs", map[int]step{1: {after: 200 * ms, err: unavailable}, 2: {err: inFlight}},
			[]time.Duration{0, 50 * ms, 1200 * ms}}, // the later of the two delays
	} {
		synctest.Test(t, func(t *testing.T) {
			r := newRecorder(tt.script)
			err := hedge.New(hedge.WithDelay(50*ms), hedge.WithMaxHedges(3)).Do(idempotent(), r.op)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got := r.startedAt(); !slices.Equal(got, tt.want) {
				t.Fatalf("%s: attempts started at %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

// A delay the call's deadline cannot cover ends the call at once with the
// attempt's error; the caller's cancellation ends a wait at once.
func TestPushbackBeyondTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		throttled := resilience.MarkRetryAfter(errors.New("429"), resilience.KindThrottled, 2*time.Second)
		ctx, cancel := context.WithTimeout(idempotent(), time.Second)
		defer cancel()
		start := time.Now()
		r := newRecorder(map[int]step{1: {err: throttled}})
		err := hedge.New(hedge.WithMaxHedges(3)).Do(ctx, r.op)
		if err != throttled || time.Since(start) != 0 || len(r.started) != 1 {
			t.Fatalf("got %v after %v and %d attempts; want the 429 at once after 1", err, time.Since(start), len(r.started))
		}

		ctx, cancel = context.WithCancel(idempotent())
		time.AfterFunc(300*ms, cancel)
		r = newRecorder(map[int]step{1: {err: throttled}})
		err = hedge.New(hedge.WithMaxHedges(3)).Do(ctx, r.op)
		if !errors.Is(err, context.Canceled) || time.Since(start) != 300*ms || len(r.started) != 1 {
			t.Fatalf("got %v after %v and %d attempts; want context.Canceled at 300ms after 1", err, time.Since(start), len(r.started))
		}
	})
}
