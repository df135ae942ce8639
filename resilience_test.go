package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/timeout"
)

// trace returns a policy that appends "name>" before op and "<name" after.
func trace(name string, log *[]string) resilience.Policy {
	return resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		*log = append(*log, name+">")
		err := op(ctx)
		*log = append(*log, "<"+name)
		return err
	})
}

func TestChainOrder(t *testing.T) {
	var log []string
	inner := resilience.Chain(trace("b", &log), trace("c", &log))
	p := resilience.Chain(trace("a", &log), inner)
	err := p.Do(context.Background(), func(context.Context) error {
		log = append(log, "op")
		return nil
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	want := []string{"a>", "b>", "c>", "op", "<c", "<b", "<a"}
	if !slices.Equal(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
}

func TestChainEmptyRunsOpOnce(t *testing.T) {
	n := 0
	boom := errors.New("boom")
	err := resilience.Chain().Do(context.Background(), func(context.Context) error { n++; return boom })
	if n != 1 || err != boom {
		t.Fatalf("got %d calls and %v, want 1 call and %v", n, err, boom)
	}
}

// wrap returns a policy, not a chain, that runs p: Chain cannot flatten it.
func wrap(p resilience.Policy) resilience.Policy {
	return resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		return p.Do(ctx, op)
	})
}

// A chain run inside another chain, hidden in a policy that Chain cannot
// flatten, and a chain run again inside its own operation, each run their
// own call's operation.
func TestChainNestedAndReentrant(t *testing.T) {
	var log []string
	inner := resilience.Chain(trace("b", &log), trace("c", &log))
	outer := resilience.Chain(trace("a", &log), wrap(inner), trace("d", &log))
	err := outer.Do(context.Background(), func(context.Context) error {
		log = append(log, "op")
		return nil
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	want := []string{"a>", "b>", "c>", "d>", "op", "<d", "<c", "<b", "<a"}
	if !slices.Equal(log, want) {
		t.Fatalf("nested: got %v, want %v", log, want)
	}

	log = nil
	depth := 0
	var op func(ctx context.Context) error
	op = func(ctx context.Context) error {
		depth++
		log = append(log, fmt.Sprint("op", depth))
		if depth < 3 {
			return inner.Do(ctx, op) // the same chain, inside its own operation
		}
		return nil
	}
	if err := inner.Do(context.Background(), op); err != nil {
		t.Fatalf("reentrant Do: %v", err)
	}
	want = []string{"b>", "c>", "op1", "b>", "c>", "op2", "b>", "c>", "op3", "<c", "<b", "<c", "<b", "<c", "<b"}
	if !slices.Equal(log, want) {
		t.Fatalf("reentrant: got %v, want %v", log, want)
	}
}

// A policy that runs the operation with a context not derived from its own
// breaks the contract; the chain says so in an error instead of panicking.
func TestChainPolicyThatDropsTheContext(t *testing.T) {
	rogue := resilience.PolicyFunc(func(_ context.Context, op func(context.Context) error) error {
		return op(context.Background())
	})
	ran := false
	err := resilience.Chain(rogue, trace("b", new([]string))).Do(context.Background(), func(context.Context) error {
		ran = true
		return nil
	})
	if ran || err == nil || !strings.Contains(err.Error(), "not derived from its own") {
		t.Fatalf("got ran=%v, err=%v; want the operation not run and an error naming the broken contract", ran, err)
	}
	if k := resilience.Classify(err); k != resilience.KindPermanent {
		t.Fatalf("got kind %v, want permanent (never retried)", k)
	}
}

func TestChainNilPanics(t *testing.T) {
	defer func() {
		r := recover()
		if msg, _ := r.(string); !strings.Contains(msg, "resilience: Chain: policy 1 is nil") {
			t.Fatalf("got panic %v, want one naming the nil policy", r)
		}
	}()
	resilience.Chain(resilience.Chain(), nil)
}

func TestDoReturnsValue(t *testing.T) {
	v, err := resilience.Do(context.Background(), resilience.Chain(), func(context.Context) (int, error) { return 42, nil })
	if v != 42 || err != nil {
		t.Fatalf("got %d, %v; want 42, nil", v, err)
	}
}

func TestClassify(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		err  error
		want resilience.Kind
	}{
		{nil, resilience.KindSuccess},
		{base, resilience.KindTransient},
		{context.Canceled, resilience.KindCanceled},
		{fmt.Errorf("wrapped: %w", context.Canceled), resilience.KindCanceled},
		{context.DeadlineExceeded, resilience.KindTransient},
		{resilience.Mark(base, resilience.KindPermanent), resilience.KindPermanent},
		{fmt.Errorf("w: %w", resilience.Mark(base, resilience.KindRejected)), resilience.KindRejected},
		{resilience.Mark(resilience.Mark(base, resilience.KindTransient), resilience.KindThrottled), resilience.KindThrottled},
		{resilience.Mark(context.Canceled, resilience.KindTransient), resilience.KindTransient},
	}
	for _, tt := range tests {
		if got := resilience.Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if resilience.Mark(nil, resilience.KindPermanent) != nil || resilience.MarkRetryAfter(nil, resilience.KindThrottled, time.Second) != nil {
		t.Error("marking a nil error must give nil")
	}
	if err := resilience.Mark(base, resilience.KindPermanent); !errors.Is(err, base) || err.Error() != "x" {
		t.Errorf("Mark must wrap transparently, got %q", err)
	}
}

func TestKindProperties(t *testing.T) {
	tests := []struct {
		k                  resilience.Kind
		retryable, failure bool
		name               string
	}{
		{resilience.KindSuccess, false, false, "success"},
		{resilience.KindTransient, true, true, "transient"},
		{resilience.KindPermanent, false, true, "permanent"},
		{resilience.KindThrottled, true, false, "throttled"},
		{resilience.KindRejected, false, false, "rejected"},
		{resilience.KindCanceled, false, false, "canceled"},
		{resilience.KindRefused, false, false, "refused"},
		{resilience.Kind(200), false, false, "unknown"},
	}
	for _, tt := range tests {
		if tt.k.Retryable() != tt.retryable || tt.k.Failure() != tt.failure || tt.k.String() != tt.name {
			t.Errorf("%v: got retryable %v failure %v name %q, want %v %v %q",
				tt.k, tt.k.Retryable(), tt.k.Failure(), tt.k.String(), tt.retryable, tt.failure, tt.name)
		}
	}
}

// A refusal keeps its kind through wrapping, so that a retry outside the
// policy that refused sees it and does not retry.
func TestRefusedIsNeitherRetriedNorCounted(t *testing.T) {
	err := fmt.Errorf("attempt 2: %w", resilience.Mark(errors.New("breaker: circuit open"), resilience.KindRefused))
	if k := resilience.Classify(err); k != resilience.KindRefused || k.Retryable() || k.Failure() {
		t.Fatalf("Classify = %v (retryable %v, failure %v), want refused, neither", k, k.Retryable(), k.Failure())
	}
	if _, ok := resilience.RetryAfter(err); ok {
		t.Fatal("a refusal marked with Mark carries no RetryAfter")
	}
}

func TestRetryAfter(t *testing.T) {
	base := errors.New("x")
	if _, ok := resilience.RetryAfter(base); ok {
		t.Error("an unmarked error has no pushback")
	}
	if _, ok := resilience.RetryAfter(resilience.Mark(base, resilience.KindThrottled)); ok {
		t.Error("Mark alone sets no pushback")
	}
	if d, ok := resilience.RetryAfter(fmt.Errorf("w: %w", resilience.MarkRetryAfter(base, resilience.KindThrottled, 3*time.Second))); !ok || d != 3*time.Second {
		t.Errorf("got %v %v, want 3s true", d, ok)
	}
	if d, ok := resilience.RetryAfter(resilience.MarkRetryAfter(base, resilience.KindThrottled, -time.Second)); !ok || d != 0 {
		t.Errorf("negative pushback: got %v %v, want 0 true", d, ok)
	}
}

func TestCallInfo(t *testing.T) {
	ctx := context.Background()
	if _, ok := resilience.CallFrom(ctx); ok {
		t.Fatal("no call outside WithCall")
	}
	if n := resilience.AttemptNumber(ctx); n != 1 {
		t.Fatalf("AttemptNumber outside any attempt = %d, want 1", n)
	}
	want := resilience.Call{Target: "example.com:443", Method: "GET", Idempotent: true}
	ctx = resilience.WithCall(ctx, want)
	actx, _ := resilience.StartAttempt(ctx, 3)
	got, ok := resilience.CallFrom(actx)
	if !ok || got != want {
		t.Fatalf("CallFrom = %+v %v, want %+v", got, ok, want)
	}
	if n := resilience.AttemptNumber(actx); n != 3 {
		t.Fatalf("AttemptNumber = %d, want 3", n)
	}
	if resilience.InAttempt(ctx) || !resilience.InAttempt(actx) || resilience.InAttempt(context.Background()) {
		t.Fatal("InAttempt must be true only inside StartAttempt's context")
	}
}

func TestDeferRunsAtOnceWhenNothingHeld(t *testing.T) {
	for _, ctx := range []context.Context{context.Background(), resilience.WithCall(context.Background(), resilience.Call{})} {
		ran := false
		resilience.Defer(ctx, func(err error) {
			if err != nil {
				t.Errorf("release got %v, want nil", err)
			}
			ran = true
		})
		if !ran || resilience.Held(ctx) {
			t.Fatalf("release ran %v, held %v; want true, false", ran, resilience.Held(ctx))
		}
	}
}

func TestHoldDelaysReleasesUntilDone(t *testing.T) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	done := resilience.Hold(ctx, nil)
	var got []string
	resilience.Defer(ctx, func(error) { got = append(got, "first") })
	resilience.Defer(ctx, func(err error) { got = append(got, "second:"+fmt.Sprint(err)) })
	if len(got) != 0 || !resilience.Held(ctx) {
		t.Fatalf("released %v before done", got)
	}
	boom := errors.New("boom")
	done(boom)
	done(nil) // only the first call counts
	if want := []string{"first", "second:boom"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if resilience.Held(ctx) {
		t.Fatal("still held after done")
	}
	// Deferred after the end: runs at once with the final error.
	var late error
	resilience.Defer(ctx, func(err error) { late = err })
	if late != boom {
		t.Fatalf("late release got %v, want %v", late, boom)
	}
}

func TestAttemptKeepHandsOverToCall(t *testing.T) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	actx, at := resilience.StartAttempt(ctx, 1)
	done := resilience.Hold(actx, nil)
	var log []string
	resilience.Defer(actx, func(error) { log = append(log, "attempt") })
	at.Keep()
	if !resilience.Held(ctx) {
		t.Fatal("the call must hold the kept attempt's result")
	}
	resilience.Defer(ctx, func(error) { log = append(log, "call") })
	if len(log) != 0 {
		t.Fatalf("released %v before the result was done", log)
	}
	done(nil)
	if want := []string{"attempt", "call"}; !slices.Equal(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
}

func TestAttemptDiscard(t *testing.T) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	actx, at := resilience.StartAttempt(ctx, 1)
	var log []string
	resilience.Hold(actx, func() { log = append(log, "discard") })
	var final error
	resilience.Defer(actx, func(err error) { final = err; log = append(log, "release") })
	at.Discard()
	if want := []string{"discard", "release"}; !slices.Equal(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
	if resilience.Classify(final) != resilience.KindCanceled {
		t.Fatalf("a discarded result ends with %v (%v), want a canceled kind", final, resilience.Classify(final))
	}
	if resilience.Held(ctx) {
		t.Fatal("a discarded attempt must not hold the call")
	}
	at.Discard() // a second end is a no-op
	var zero resilience.Attempt
	zero.Keep()
	zero.Discard()
}

func TestDiscardReachesAKeptInnerAttempt(t *testing.T) {
	// A retry inside a retry: the outer attempt holds the result the
	// inner one kept, and discarding the outer attempt throws it away.
	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	outerCtx, outer := resilience.StartAttempt(ctx, 1)
	innerCtx, inner := resilience.StartAttempt(outerCtx, 1)
	var log []string
	resilience.Hold(innerCtx, func() { log = append(log, "discard body") })
	resilience.Defer(innerCtx, func(error) { log = append(log, "inner release") })
	inner.Keep()
	resilience.Defer(outerCtx, func(error) { log = append(log, "outer release") })
	outer.Discard()
	if want := []string{"discard body", "inner release", "outer release"}; !slices.Equal(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
	if resilience.Held(ctx) {
		t.Fatal("the call must hold nothing after the discard")
	}
}

func TestKeepAfterDoneDoesNotHoldCall(t *testing.T) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	actx, at := resilience.StartAttempt(ctx, 1)
	done := resilience.Hold(actx, nil)
	done(nil)
	at.Keep()
	if resilience.Held(ctx) {
		t.Fatal("a finished result must not hold the call")
	}
}

func TestAttemptContextDoesNotSpawnGoroutines(t *testing.T) {
	// Contexts derived from attempt contexts follow cancellation through
	// AfterFunc, not a goroutine per derived context.
	parent, cancel := context.WithCancel(context.Background())
	ctx := resilience.WithCall(parent, resilience.Call{})
	actx, _ := resilience.StartAttempt(ctx, 1)
	before := runtime.NumGoroutine()
	child, cancelChild := context.WithCancel(actx)
	defer cancelChild()
	// Only more goroutines is a failure: one left by an earlier test may
	// end in between.
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("deriving a context started %d goroutine(s)", after-before)
	}
	cancel()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cancellation did not reach a context derived from an attempt")
	}
	if !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("child.Err() = %v, want context.Canceled", child.Err())
	}
}

// Do through a chain returns the last run's value, and a Do of the same
// type run inside the operation, through the same chain, keeps its own.
func TestDoThroughChain(t *testing.T) {
	var log []string
	p := resilience.Chain(trace("a", &log), trace("b", &log))
	runs := 0
	again := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		_ = op(ctx)
		return op(ctx) // a retry: the second run's value is the one returned
	})
	v, err := resilience.Do(context.Background(), resilience.Chain(again, p), func(ctx context.Context) (int, error) {
		runs++
		inner, err := resilience.Do(ctx, p, func(context.Context) (int, error) { return 100 + runs, nil })
		return runs*10 + inner, err
	})
	if err != nil || v != 20+102 || runs != 2 {
		t.Fatalf("got %d, %v after %d runs; want %d, nil after 2", v, err, runs, 20+102)
	}
}

type countingReleaser struct {
	n   int
	err error
}

func (r *countingReleaser) Release(err error) { r.n++; r.err = err }

// DeferRelease runs a Releaser when the held result is done, with its
// final error, at once when nothing is held, and at once outside a call.
func TestDeferRelease(t *testing.T) {
	outside := &countingReleaser{}
	resilience.DeferRelease(context.Background(), outside)
	if outside.n != 1 || outside.err != nil {
		t.Fatalf("outside a call: %d releases, err %v; want 1, nil", outside.n, outside.err)
	}

	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	now := &countingReleaser{}
	resilience.DeferRelease(ctx, now)
	if now.n != 1 {
		t.Fatalf("nothing held: %d releases, want 1 at once", now.n)
	}

	ctx = resilience.WithCall(context.Background(), resilience.Call{})
	done := resilience.Hold(ctx, nil)
	later := &countingReleaser{}
	resilience.DeferRelease(ctx, later)
	if later.n != 0 {
		t.Fatalf("held: released %d times before done, want 0", later.n)
	}
	boom := errors.New("body cut")
	done(boom)
	done(nil)
	if later.n != 1 || later.err != boom {
		t.Fatalf("after done: %d releases, err %v; want 1, %v", later.n, later.err, boom)
	}
}

// discarder counts its discards.
type discarder struct{ n int }

func (d *discarder) Discard() { d.n++ }

func TestHoldWith(t *testing.T) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	t.Run("done", func(t *testing.T) {
		actx, at := resilience.StartAttempt(ctx, 1)
		d := &discarder{}
		h := resilience.HoldWith(actx, d)
		var got []error
		resilience.Defer(actx, func(err error) { got = append(got, err) })
		at.Keep()
		if !resilience.Held(ctx) || len(got) != 0 {
			t.Fatalf("held %v, releases %v; want held and none yet", resilience.Held(ctx), got)
		}
		boom := errors.New("boom")
		h.Done(boom)
		h.Done(nil) // only the first call counts
		if len(got) != 1 || got[0] != boom || d.n != 0 {
			t.Fatalf("releases got %v, %d discards; want [boom] and none", got, d.n)
		}
	})
	t.Run("discarded", func(t *testing.T) {
		actx, at := resilience.StartAttempt(ctx, 1)
		d := &discarder{}
		h := resilience.HoldWith(actx, d)
		at.Discard()
		h.Done(nil)
		if d.n != 1 {
			t.Fatalf("got %d discards, want 1", d.n)
		}
	})
	t.Run("outside any call", func(t *testing.T) {
		h := resilience.HoldWith(context.Background(), &discarder{})
		h.Done(nil)
		var zero resilience.Holding
		zero.Done(nil)
	})
}

// Holding a result under the module's own timeout contexts allocates
// nothing: the registration that abandons it if the context ends is a
// field of the attempt, not a closure.
func TestHoldWithAllocations(t *testing.T) {
	p := resilience.Chain(timeout.New(time.Minute), timeout.New(time.Minute, timeout.WithScope(timeout.ScopeAttempt)))
	ctx := resilience.WithCall(context.Background(), resilience.Call{})
	d := &discarder{}
	var h resilience.Holding
	op := func(ctx context.Context) error {
		h = resilience.HoldWith(ctx, d)
		return nil
	}
	base := testing.AllocsPerRun(50, func() {
		p.Do(ctx, func(context.Context) error { return nil })
	})
	held := testing.AllocsPerRun(50, func() {
		p.Do(ctx, op)
		h.Done(nil)
	})
	if held != base {
		t.Fatalf("holding a result: %v allocations, want %v, as without", held, base)
	}
}

// operation records the call its runs see.
type operation struct {
	calls []resilience.Call
	err   error
}

func (o *operation) Run(ctx context.Context) error {
	c, _ := resilience.CallFrom(ctx)
	o.calls = append(o.calls, c)
	return o.err
}

func TestDoCall(t *testing.T) {
	call := resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true}
	var log []string
	for _, tt := range []struct {
		name string
		p    resilience.Policy
	}{
		{"chain", resilience.Chain(trace("a", &log), trace("b", &log))},
		{"one policy", trace("a", &log)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			boom := errors.New("boom")
			op := &operation{err: boom}
			if err := resilience.DoCall(context.Background(), tt.p, call, op); err != boom {
				t.Fatalf("got %v, want %v", err, boom)
			}
			if len(op.calls) != 1 || op.calls[0] != call {
				t.Fatalf("op saw calls %v, want [%v]", op.calls, call)
			}
		})
	}
}

func TestDoCallAllocations(t *testing.T) {
	p := resilience.Chain(timeout.New(time.Minute), timeout.New(time.Minute))
	call := resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true}
	op := &operation{}
	ctx := context.Background()
	viaWithCall := testing.AllocsPerRun(50, func() {
		op.calls = op.calls[:0]
		p.Do(resilience.WithCall(ctx, call), op.Run)
	})
	viaDoCall := testing.AllocsPerRun(50, func() {
		op.calls = op.calls[:0]
		resilience.DoCall(ctx, p, call, op)
	})
	if viaDoCall != viaWithCall-2 {
		t.Fatalf("DoCall: %v allocations, want %v (WithCall and Do: %v, less the call's context and op.Run)", viaDoCall, viaWithCall-2, viaWithCall)
	}
}
