package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitDone is an operation that honours its context and nothing else.
func waitDone(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestTimeoutExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := timeout.New(time.Second)
		start := time.Now()
		var opErr error
		err := p.Do(context.Background(), func(ctx context.Context) error {
			opErr = waitDone(ctx)
			return opErr
		})
		if elapsed := time.Since(start); elapsed != time.Second {
			t.Errorf("returned after %v, want 1s", elapsed)
		}
		if !errors.Is(opErr, context.DeadlineExceeded) {
			t.Errorf("op's ctx.Err() = %v, want context.DeadlineExceeded", opErr)
		}
		if !errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want an error matching ErrTimeout and DeadlineExceeded", err)
		}
		if errors.Is(err, context.Canceled) {
			t.Errorf("%v must not match context.Canceled", err)
		}
		var te *timeout.Error
		if !errors.As(err, &te) || te.After != time.Second {
			t.Fatalf("got %#v, want *timeout.Error with After 1s", err)
		}
		var to interface{ Timeout() bool }
		if !errors.As(err, &to) || !to.Timeout() {
			t.Errorf("%v does not report Timeout() true", err)
		}
		if k := resilience.Classify(err); k != resilience.KindTransient {
			t.Errorf("Classify = %v, want transient", k)
		}
		if msg := err.Error(); msg != "timeout: exceeded 1s: context deadline exceeded" {
			t.Errorf("message %q", msg)
		}
	})
}

func TestOperationSeesDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := timeout.New(2 * time.Second)
		want := time.Now().Add(2 * time.Second)
		err := p.Do(context.Background(), func(ctx context.Context) error {
			dl, ok := ctx.Deadline()
			if !ok || !dl.Equal(want) {
				t.Errorf("Deadline() = %v %v, want %v true", dl, ok, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestCallerDeadlineSoonerArmsNoTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p := timeout.New(time.Minute)
		err := p.Do(ctx, func(opCtx context.Context) error {
			if opCtx != ctx {
				t.Error("the caller's sooner deadline applies: op must get the caller's context itself")
			}
			return waitDone(opCtx)
		})
		if err != context.DeadlineExceeded {
			t.Fatalf("got %v, want the caller's own context.DeadlineExceeded", err)
		}
		if errors.Is(err, timeout.ErrTimeout) {
			t.Fatal("the caller's deadline must be told apart from the policy's")
		}
	})
}

func TestCallerCancellationIsNotATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		err := timeout.New(time.Second).Do(ctx, waitDone)
		if !errors.Is(err, context.Canceled) || errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("got %v, want context.Canceled and not ErrTimeout", err)
		}
	})
}

func TestSuccessReleasesContext(t *testing.T) {
	var opCtx context.Context
	err := timeout.New(time.Hour).Do(context.Background(), func(ctx context.Context) error {
		opCtx = ctx
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if opCtx.Err() == nil {
		t.Fatal("the operation's context must be released when Do returns and nothing is held")
	}
}

func TestSuccessAfterDeadlineIsSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// An operation that ignores its context and succeeds late still
		// succeeded: the policy does not turn a result into an error.
		err := timeout.New(time.Second).Do(context.Background(), func(ctx context.Context) error {
			time.Sleep(2 * time.Second)
			return nil
		})
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
}

func TestHeldResultOutlivesAttemptTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		call := resilience.WithCall(context.Background(), resilience.Call{})
		attempt, _ := resilience.StartAttempt(call, 1)
		var (
			opCtx context.Context
			done  func(error)
		)
		err := timeout.New(time.Second).Do(attempt, func(ctx context.Context) error {
			opCtx = ctx
			done = resilience.Hold(ctx, nil)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour) // far past the timeout: a body still being read
		if opCtx.Err() != nil {
			t.Fatalf("held result's context ended with %v before it was done", opCtx.Err())
		}
		done(nil)
		if !errors.Is(opCtx.Err(), context.Canceled) {
			t.Fatalf("after done, ctx.Err() = %v, want canceled", opCtx.Err())
		}
	})
}

func TestCallTimeoutBoundsHeldResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		call := resilience.WithCall(context.Background(), resilience.Call{})
		var (
			opCtx context.Context
			done  func(error)
		)
		err := timeout.New(time.Second).Do(call, func(ctx context.Context) error {
			opCtx = ctx
			done = resilience.Hold(ctx, nil)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if opCtx.Err() != nil {
			t.Fatalf("held result's context ended with %v within the timeout", opCtx.Err())
		}
		time.Sleep(time.Second)
		if opCtx.Err() != context.DeadlineExceeded {
			t.Fatalf("past the call's timeout, ctx.Err() = %v, want context.DeadlineExceeded", opCtx.Err())
		}
		done(nil)
	})
}

func TestCallTimeoutReleasedWhenHeldResultDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		call := resilience.WithCall(context.Background(), resilience.Call{})
		var opCtx context.Context
		timeout.New(time.Second).Do(call, func(ctx context.Context) error {
			opCtx = ctx
			resilience.Hold(ctx, nil)(nil) // the body was read at once
			return nil
		})
		if !errors.Is(opCtx.Err(), context.Canceled) {
			t.Fatalf("ctx.Err() = %v, want released at once", opCtx.Err())
		}
	})
}

func TestDeadlinePassedCountsAsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The dependency enforces the same deadline and answers just
		// before the policy's timer fires: still the policy's timeout.
		err := timeout.New(time.Second).Do(context.Background(), func(ctx context.Context) error {
			dl, _ := ctx.Deadline()
			time.Sleep(time.Until(dl))
			return errors.New("server: deadline exceeded")
		})
		if !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	})
}

func TestDerivedContextsNeedNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A retry inside a total timeout derives attempt contexts from the
		// timeout's context, and the per-attempt timeout and the transport
		// derive again: none of this may cost a goroutine per call.
		call := resilience.WithCall(context.Background(), resilience.Call{})
		err := timeout.New(time.Second).Do(call, func(ctx context.Context) error {
			actx, _ := resilience.StartAttempt(ctx, 1)
			before := runtime.NumGoroutine()
			child, cancel := context.WithCancel(actx)
			defer cancel()
			if after := runtime.NumGoroutine(); after != before {
				t.Errorf("deriving a context started %d goroutine(s)", after-before)
			}
			err := waitDone(child)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("derived context ended with %v, want context.DeadlineExceeded", err)
			}
			return err
		})
		if !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	})
}

func TestNewPanicsOnInvalidDuration(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "timeout: New: duration must be positive") {
					t.Errorf("New(%v): got panic %q", d, msg)
				}
			}()
			timeout.New(d)
		}()
	}
}

// An explicit scope decides what the policy bounds, wherever it runs.
func TestScopeIsExplicit(t *testing.T) {
	for _, tt := range []struct {
		scope     timeout.Scope
		inAttempt bool
		wantCut   bool
	}{
		{timeout.ScopeAttempt, false, false},
		{timeout.ScopeAttempt, true, false},
		{timeout.ScopeCall, false, true},
		{timeout.ScopeCall, true, true},
		{timeout.ScopeAuto, false, true},
		{timeout.ScopeAuto, true, false},
	} {
		synctest.Test(t, func(t *testing.T) {
			p := timeout.New(time.Second, timeout.WithScope(tt.scope))
			ctx := resilience.WithCall(t.Context(), resilience.Call{})
			var at resilience.Attempt
			if tt.inAttempt {
				ctx, at = resilience.StartAttempt(ctx, 1)
			}
			var held context.Context
			var done func(error)
			if err := p.Do(ctx, func(ctx context.Context) error {
				held = ctx
				done = resilience.Hold(ctx, nil)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second) // past the timeout, the result still held
			if cut := held.Err() != nil; cut != tt.wantCut {
				t.Errorf("scope %d, in attempt %v: held result cut %v, want %v", tt.scope, tt.inAttempt, cut, tt.wantCut)
			}
			done(nil)
			at.Keep()
		})
	}
}

func TestScopeInvalid(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "WithScope") {
			t.Errorf("panic %v, want one naming WithScope", r)
		}
	}()
	timeout.New(time.Second, timeout.WithScope(42))
}

func TestNilOptionNamed(t *testing.T) {
	defer func() {
		if r := recover(); r != "timeout: New: option 0 is nil" {
			t.Errorf("panic %v, want one naming the nil option", r)
		}
	}()
	timeout.New(time.Second, nil)
}

// Once the policy's deadline ended the operation's context, context.Cause
// reports that deadline, even when the caller's context is canceled with a
// cause afterwards, as for a context.WithTimeout; whether the operation
// waited on Done (the timer armed) or only asked Err (no timer).
func TestCauseAfterDeadlineIsTheDeadline(t *testing.T) {
	for name, wait := range map[string]func(ctx context.Context){
		"Done":          func(ctx context.Context) { <-ctx.Done() },
		"no timer":      func(context.Context) { time.Sleep(2 * time.Second) },
		"Err, no timer": func(ctx context.Context) { time.Sleep(2 * time.Second); _ = ctx.Err() },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				parent, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil)
				var gotErr, gotCause error
				_ = timeout.New(time.Second).Do(parent, func(ctx context.Context) error {
					wait(ctx)
					cancel(errors.New("the caller gave up"))
					synctest.Wait()
					gotErr, gotCause = ctx.Err(), context.Cause(ctx)
					return gotErr
				})
				if gotErr != context.DeadlineExceeded || gotCause != context.DeadlineExceeded {
					t.Fatalf("Err %v, Cause %v; want both %v", gotErr, gotCause, context.DeadlineExceeded)
				}
			})
		})
	}
}
