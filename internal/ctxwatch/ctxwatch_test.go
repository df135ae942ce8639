package ctxwatch

import (
	"context"
	"sync"
	"testing"
)

// counter counts how many times it was told.
type counter struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func (c *counter) ContextEnded() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
	}
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// source is a minimal Source, ended by end.
type source struct {
	context.Context
	mu    sync.Mutex
	ended bool
	l     List
}

func (s *source) AddWatch(r *Reg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.l.Push(r)
	return true
}

func (s *source) RemoveWatch(r *Reg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l.Remove(r)
}

func (s *source) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	for {
		s.mu.Lock()
		w := s.l.Pop()
		s.mu.Unlock()
		if w == nil {
			return
		}
		w.ContextEnded()
	}
}

// wrapper forwards registrations to the context it wraps.
type wrapper struct{ context.Context }

func (w wrapper) ForwardWatch(r *Reg) bool { return Forward(w.Context, r) }

func TestSourceTellsWatchersOnceInOrder(t *testing.T) {
	s := &source{Context: context.Background()}
	var order []int
	regs := make([]Reg, 3)
	for i := range regs {
		if !regs[i].Watch(wrapper{s}, watchFunc(func() { order = append(order, i) })) {
			t.Fatalf("Watch %d: got false, want true", i)
		}
	}
	if !regs[1].Stop() {
		t.Fatal("Stop before the end: got false, want true")
	}
	if regs[1].Stop() {
		t.Fatal("second Stop: got true, want false")
	}
	s.end()
	if len(order) != 2 || order[0] != 0 || order[1] != 2 {
		t.Fatalf("told %v, want [0 2]", order)
	}
	if regs[0].Stop() {
		t.Fatal("Stop after the end: got true, want false")
	}
	var late Reg
	if late.Watch(s, &counter{}) {
		t.Fatal("Watch of an ended source: got true, want false")
	}
}

type watchFunc func()

func (f watchFunc) ContextEnded() { f() }

func TestWatchOtherContexts(t *testing.T) {
	t.Run("never ends", func(t *testing.T) {
		var r Reg
		if !r.Watch(wrapper{context.Background()}, &counter{}) {
			t.Fatal("got false, want true")
		}
		if r.Active() {
			t.Fatal("Active: got true, want false (nothing registered)")
		}
		if r.Stop() {
			t.Fatal("Stop: got true, want false (nothing registered)")
		}
	})
	t.Run("cancelable", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		c := &counter{ch: make(chan struct{})}
		var r Reg
		if !r.Watch(wrapper{ctx}, c) {
			t.Fatal("got false, want true")
		}
		cancel()
		<-c.ch
		if r.Stop() {
			t.Fatal("Stop after the end: got true, want false")
		}
		if n := c.count(); n != 1 {
			t.Fatalf("told %d times, want 1", n)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var r Reg
		r.Watch(ctx, &counter{})
		if !r.Active() {
			t.Fatal("Active: got false, want true")
		}
		if !r.Stop() {
			t.Fatal("Stop: got false, want true")
		}
	})
	t.Run("ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var r Reg
		if r.Watch(wrapper{ctx}, &counter{}) {
			t.Fatal("got true, want false")
		}
	})
}

func TestWatchAllocatesNothingWithASource(t *testing.T) {
	s := &source{Context: context.Background()}
	c := &counter{}
	var ctx context.Context = wrapper{s}
	var r Reg
	n := testing.AllocsPerRun(100, func() {
		r = Reg{}
		r.Watch(ctx, c)
		r.Stop()
	})
	if n != 0 {
		t.Fatalf("got %v allocations, want 0", n)
	}
}
