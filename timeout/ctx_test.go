package timeout

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type ctxKey struct{}

func TestTimerCtxExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent := context.WithValue(context.Background(), ctxKey{}, "v")
		c := newTimerCtx(parent, time.Second, time.Now().Add(time.Second))
		child, cancelChild := context.WithCancel(c)
		defer cancelChild()
		if dl, ok := c.Deadline(); !ok || !dl.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("Deadline: got %v, %v", dl, ok)
		}
		if got := c.Value(ctxKey{}); got != "v" {
			t.Fatalf("Value: got %v, want the parent's", got)
		}
		if c.Err() != nil || child.Err() != nil {
			t.Fatalf("before the deadline: Err %v, child %v; want nil", c.Err(), child.Err())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case <-c.Done():
		default:
			t.Fatal("Done not closed after the deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !c.hasFired() {
			t.Fatalf("got Err %v, fired %v; want DeadlineExceeded, true", c.Err(), c.hasFired())
		}
		if !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("derived context: got %v, want DeadlineExceeded", child.Err())
		}
		if c.stopTimer() {
			t.Fatal("stopTimer after firing reported true")
		}
	})
}

func TestTimerCtxFollowsParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newTimerCtx(parent, time.Hour, time.Now().Add(time.Hour))
		done := c.Done()
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Done not closed after the parent was canceled")
		}
		if !errors.Is(c.Err(), context.Canceled) || c.hasFired() {
			t.Fatalf("got Err %v, fired %v; want Canceled, false", c.Err(), c.hasFired())
		}
		if c.stopTimer() {
			t.Fatal("the timer was still armed after the parent ended")
		}
	})
}

func TestTimerCtxParentAlreadyDone(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	c := newTimerCtx(parent, time.Hour, time.Now().Add(time.Hour))
	if !errors.Is(c.Err(), context.Canceled) || c.timer != nil {
		t.Fatalf("got Err %v, timer %v; want Canceled and no timer armed", c.Err(), c.timer)
	}
	<-c.Done() // must not block
}

func TestTimerCtxCancelAndAfterFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTimerCtx(context.Background(), time.Hour, time.Now().Add(time.Hour))
		ran := 0
		c.AfterFunc(func() { ran++ })
		stop := c.AfterFunc(func() { t.Error("a stopped AfterFunc ran") })
		if !stop() {
			t.Fatal("stop before the end reported false")
		}
		if !c.stopTimer() {
			t.Fatal("stopTimer before the end reported false")
		}
		c.cancel()
		c.cancel() // idempotent
		if ran != 1 || !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("got %d runs and Err %v; want 1 and Canceled", ran, c.Err())
		}
		late := make(chan struct{})
		if c.AfterFunc(func() { close(late) })() {
			t.Fatal("stop of an AfterFunc registered after the end reported true")
		}
		<-late // registered after the end: runs at once
	})
}

// context.Cause on the policy's context reports its own end, even under an
// ancestor that is a cancel context of the context package.
func TestTimerCtxCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := newTimerCtx(parent, time.Second, time.Now().Add(time.Second))
		time.Sleep(time.Second)
		synctest.Wait()
		if got := context.Cause(c); !errors.Is(got, context.DeadlineExceeded) {
			t.Fatalf("Cause = %v, want DeadlineExceeded", got)
		}
	})
}
