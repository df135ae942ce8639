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
		c := newTimerCtx(parent, time.Now().Add(time.Second))
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
		if armed, stopped := c.stopTimer(); !armed || stopped {
			t.Fatalf("stopTimer after firing: armed %v, stopped %v; want true, false", armed, stopped)
		}
	})
}

func TestTimerCtxFollowsParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newTimerCtx(parent, time.Now().Add(time.Hour))
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
		if _, stopped := c.stopTimer(); stopped {
			t.Fatal("the timer was still armed after the parent ended")
		}
	})
}

func TestTimerCtxParentAlreadyDone(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	c := newTimerCtx(parent, time.Now().Add(time.Hour))
	if !errors.Is(c.Err(), context.Canceled) || c.timer != nil {
		t.Fatalf("got Err %v, timer %v; want Canceled and no timer armed", c.Err(), c.timer)
	}
	<-c.Done() // must not block
}

func TestTimerCtxCancelAndAfterFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTimerCtx(context.Background(), time.Now().Add(time.Hour))
		ran := 0
		c.AfterFunc(func() { ran++ })
		stop := c.AfterFunc(func() { t.Error("a stopped AfterFunc ran") })
		if !stop() {
			t.Fatal("stop before the end reported false")
		}
		if armed, stopped := c.stopTimer(); !armed || !stopped {
			t.Fatalf("stopTimer before the end: armed %v, stopped %v; want true, true (AfterFunc arms it)", armed, stopped)
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
		c := newTimerCtx(parent, time.Now().Add(time.Second))
		time.Sleep(time.Second)
		synctest.Wait()
		if got := context.Cause(c); !errors.Is(got, context.DeadlineExceeded) {
			t.Fatalf("Cause = %v, want DeadlineExceeded", got)
		}
	})
}

// A context nothing waits on arms no timer: Err reads the clock, and ends
// the context once the deadline has passed, as the timer would have.
func TestTimerCtxUnarmedEndsOnErr(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTimerCtx(context.Background(), time.Now().Add(time.Second))
		if err := c.Err(); err != nil {
			t.Fatalf("before the deadline: Err %v", err)
		}
		if c.timer != nil {
			t.Fatal("a timer was armed with nothing waiting for the end")
		}
		time.Sleep(time.Second)
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) || !c.hasFired() {
			t.Fatalf("after the deadline: Err %v, fired %v; want DeadlineExceeded, true", err, c.hasFired())
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done not closed once Err reported the deadline")
		}
		if c.timer != nil {
			t.Fatal("a timer was armed after the end")
		}
	})
}

// Done, AfterFunc and AddWatch arm the timer: whatever waits is told at the
// deadline without asking Err.
func TestTimerCtxArmsWhenWaitedOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for name, wait := range map[string]func(c *timerCtx) <-chan struct{}{
			"Done": func(c *timerCtx) <-chan struct{} { return c.Done() },
			"AfterFunc": func(c *timerCtx) <-chan struct{} {
				ch := make(chan struct{})
				c.AfterFunc(func() { close(ch) })
				return ch
			},
			"derived": func(c *timerCtx) <-chan struct{} {
				d, cancel := context.WithCancel(c)
				t.Cleanup(cancel)
				return d.Done()
			},
			"nested timeout": func(c *timerCtx) <-chan struct{} {
				return newTimerCtx(c, time.Now().Add(time.Hour)).Done()
			},
		} {
			c := newTimerCtx(context.Background(), time.Now().Add(time.Second))
			ch := wait(c)
			time.Sleep(time.Second)
			synctest.Wait()
			select {
			case <-ch:
			default:
				t.Fatalf("%s: not told at the deadline", name)
			}
			if !c.hasFired() {
				t.Fatalf("%s: the end did not come from the deadline", name)
			}
		}
	})
}

// Once the policy stops its deadline (an attempt's timeout with a result
// held past it), neither a timer nor the clock ends the context.
func TestTimerCtxStoppedNeverArms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTimerCtx(context.Background(), time.Now().Add(time.Second))
		if armed, stopped := c.stopTimer(); armed || stopped {
			t.Fatalf("stopTimer of an unarmed context: armed %v, stopped %v", armed, stopped)
		}
		done := c.Done()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := c.Err(); err != nil {
			t.Fatalf("after a stopped deadline: Err %v, want nil", err)
		}
		select {
		case <-done:
			t.Fatal("Done closed after the deadline was stopped")
		default:
		}
		c.cancel()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("after cancel: Err %v", c.Err())
		}
	})
}
