package timeout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The policy's context is compared here with context.WithTimeout: the same
// scenarios run on both, and what a caller can observe (Err, Cause, Done,
// Deadline, a derived context, AfterFunc) must be the same. Observations
// are taken once every goroutine in the bubble has settled
// (synctest.Wait): a parent that is not one of the module's contexts tells
// the policy's context through context.AfterFunc, on a goroutine of its
// own, where it tells a context of the context package's at once.

// timeoutImpl makes a context that ends after d, and the function that
// ends it early: the policy's end of an operation, or the cancel func that
// context.WithTimeout returns.
type timeoutImpl struct {
	name string
	make func(parent context.Context, d time.Duration) (context.Context, func())
}

var timeoutImpls = [2]timeoutImpl{
	{"context.WithTimeout", func(parent context.Context, d time.Duration) (context.Context, func()) {
		return context.WithTimeout(parent, d)
	}},
	{"timerCtx", func(parent context.Context, d time.Duration) (context.Context, func()) {
		c := newTimerCtx(parent, time.Now().Add(d))
		return c, c.cancel
	}},
}

// errParent is the cause the parent is canceled with.
var errParent = errors.New("parent's cause")

// A stdParent is the context the one under test is made from, and the
// function that cancels it with errParent (nil when it cannot be).
type stdParent struct {
	name string
	make func(impl timeoutImpl) (ctx context.Context, cancel func(), cleanup func())
}

var stdParents = []stdParent{
	{"Background", func(timeoutImpl) (context.Context, func(), func()) {
		return context.Background(), nil, func() {}
	}},
	{"WithCancelCause", func(timeoutImpl) (context.Context, func(), func()) {
		ctx, cancel := context.WithCancelCause(context.Background())
		return ctx, func() { cancel(errParent) }, func() { cancel(nil) }
	}},
	{"value under WithCancelCause", func(timeoutImpl) (context.Context, func(), func()) {
		ctx, cancel := context.WithCancelCause(context.Background())
		return context.WithValue(ctx, ctxKey{}, "v"), func() { cancel(errParent) }, func() { cancel(nil) }
	}},
	// The same implementation, with a later deadline, under a cause:
	// a total timeout around a per-attempt one.
	{"3s timeout under WithCancelCause", func(impl timeoutImpl) (context.Context, func(), func()) {
		root, cancelRoot := context.WithCancelCause(context.Background())
		ctx, cancel := impl.make(root, 3*time.Second)
		return ctx, func() { cancelRoot(errParent) }, func() { cancel(); cancelRoot(nil) }
	}},
}

// A waiter is what waits on the context under test from its start: nothing
// (its timer is never armed), Done, AfterFunc or a derived context.
type waiter struct {
	name  string
	start func(ctx context.Context, log *obsLog) (observe func(), cleanup func())
}

var waiters = []waiter{
	{"nothing", func(context.Context, *obsLog) (func(), func()) { return func() {}, func() {} }},
	{"Done", func(ctx context.Context, log *obsLog) (func(), func()) {
		done := ctx.Done()
		return func() { log.add("Done closed %v", closed(done)) }, func() {}
	}},
	{"AfterFunc", func(ctx context.Context, log *obsLog) (func(), func()) {
		var mu sync.Mutex
		var runs []string
		context.AfterFunc(ctx, func() {
			// What a function run at the end sees.
			mu.Lock()
			defer mu.Unlock()
			runs = append(runs, fmt.Sprintf("Err %v, Cause %v, Done closed %v",
				ctx.Err(), context.Cause(ctx), closed(ctx.Done())))
		})
		stop := context.AfterFunc(ctx, func() { log.add("a stopped AfterFunc ran") })
		log.add("stop before the end: %v", stop())
		return func() {
			mu.Lock()
			defer mu.Unlock()
			log.add("AfterFunc runs %q", runs)
		}, func() {}
	}},
	{"derived", func(ctx context.Context, log *obsLog) (func(), func()) {
		d, cancel := context.WithCancel(ctx)
		return func() {
			log.add("derived Err %v, Cause %v, Done closed %v", d.Err(), context.Cause(d), closed(d.Done()))
		}, cancel
	}},
}

// A step is one thing a scenario does to the context under test, at the
// bubble's time.
type step struct {
	name string
	do   func(s *scenarioRun)
}

// scenarioRun is the state of one scenario on one implementation.
type scenarioRun struct {
	ctx          context.Context
	cancel       func()
	cancelParent func()
	observe      func()
	log          *obsLog
	start        time.Time
}

// sleep lets d pass, and what is due by then run: a step right at the
// deadline comes after the deadline's timer, never in a race with it.
func sleep(d time.Duration) step {
	return step{fmt.Sprintf("sleep %v", d), func(*scenarioRun) {
		time.Sleep(d)
		synctest.Wait()
	}}
}

var (
	cancelParent = step{"cancel the parent", func(s *scenarioRun) {
		if s.cancelParent != nil {
			s.cancelParent()
		}
	}}
	cancelOwn = step{"cancel", func(s *scenarioRun) { s.cancel() }}
	observe   = step{"observe", func(s *scenarioRun) {
		synctest.Wait()
		s.log.add("at %v: Err %v, Cause %v", time.Since(s.start), s.ctx.Err(), context.Cause(s.ctx))
		s.observe()
	}}
	// observeDone asks for Done after Err and Cause: a context that
	// reports its end must have closed it.
	observeDone = step{"observe Done", func(s *scenarioRun) {
		synctest.Wait()
		s.log.add("at %v: Done closed %v", time.Since(s.start), closed(s.ctx.Done()))
	}}
	lateAfterFunc = step{"AfterFunc after the end", func(s *scenarioRun) {
		ran := make(chan string, 1)
		stop := context.AfterFunc(s.ctx, func() { ran <- fmt.Sprint(context.Cause(s.ctx)) })
		s.log.add("late AfterFunc: stop %v", stop())
		synctest.Wait()
		select {
		case c := <-ran:
			s.log.add("late AfterFunc ran, Cause %v", c)
		default:
			s.log.add("late AfterFunc did not run")
		}
	}}
)

var stdScenarios = [][]step{
	{observe, sleep(time.Second), observe, observeDone},
	{sleep(time.Second), observe, cancelParent, observe, lateAfterFunc},
	// Nothing asks between the deadline and the parent's end.
	{sleep(time.Second), cancelParent, observe, observeDone},
	{sleep(2 * time.Second), cancelParent, observe},
	{sleep(500 * time.Millisecond), cancelParent, observe, sleep(time.Second), observe, observeDone},
	{cancelParent, observe, cancelOwn, observe},
	{sleep(500 * time.Millisecond), cancelOwn, observe, cancelParent, observe, sleep(time.Second), observe},
	{sleep(time.Second), observe, cancelOwn, observe, cancelParent, observe},
	// The end of an operation after its deadline, nothing having asked.
	{sleep(time.Second), cancelOwn, observe, observeDone, cancelParent, observe},
	{sleep(1500 * time.Millisecond), observeDone, observe, lateAfterFunc},
	// AfterFunc is the first thing to ask after the deadline passed.
	{sleep(1500 * time.Millisecond), lateAfterFunc, observe, cancelParent, observe},
	{sleep(4 * time.Second), observe, cancelParent, observe},
}

// TestTimerCtxMatchesWithTimeout runs every scenario on the policy's
// context and on context.WithTimeout, and compares what each observed.
func TestTimerCtxMatchesWithTimeout(t *testing.T) {
	for _, parent := range stdParents {
		for _, w := range waiters {
			for _, steps := range stdScenarios {
				names := make([]string, len(steps))
				for i, s := range steps {
					names[i] = s.name
				}
				name := fmt.Sprintf("%s/%s waits/%s", parent.name, w.name, strings.Join(names, ", "))
				t.Run(name, func(t *testing.T) {
					var logs [2][]string
					for i, impl := range timeoutImpls {
						synctest.Test(t, func(t *testing.T) {
							logs[i] = runScenario(impl, parent, w, steps)
						})
					}
					if strings.Join(logs[0], "\n") != strings.Join(logs[1], "\n") {
						t.Errorf("observations differ\n%s:\n\t%s\n%s:\n\t%s",
							timeoutImpls[0].name, strings.Join(logs[0], "\n\t"),
							timeoutImpls[1].name, strings.Join(logs[1], "\n\t"))
					}
				})
			}
		}
	}
}

func runScenario(impl timeoutImpl, parent stdParent, w waiter, steps []step) []string {
	log := new(obsLog)
	pctx, cancelParent, cleanupParent := parent.make(impl)
	defer cleanupParent()
	ctx, cancel := impl.make(pctx, time.Second)
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || !dl.Equal(time.Now().Add(time.Second)) {
		log.add("Deadline %v, %v; want 1s from now", dl, ok)
	}
	observe, cleanup := w.start(ctx, log)
	defer cleanup()
	s := &scenarioRun{
		ctx: ctx, cancel: cancel, cancelParent: cancelParent,
		observe: observe, log: log, start: time.Now(),
	}
	for _, st := range steps {
		st.do(s)
	}
	return log.lines
}

// obsLog is what a scenario observed, in order.
type obsLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *obsLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// The key context.Cause looks up was found: without it, Value could not
// answer for Cause.
func TestCancelCtxKeyFound(t *testing.T) {
	if cancelCtxKey == nil {
		t.Fatal("context.Cause asked no key of its context")
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errParent)
	if ctx.Value(cancelCtxKey) == nil {
		t.Fatal("a cancel context answered nothing for the key context.Cause asked")
	}
}
