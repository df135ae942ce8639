package keyed

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTest(max int, idle time.Duration) (*Registry[int], *clock, *int) {
	made := new(int)
	r := New(max, idle, func(string) int { *made++; return *made })
	c := &clock{t: time.Unix(1000, 0)}
	r.now = c.now
	return r, c, made
}

func TestBoundedUnderManyKeys(t *testing.T) {
	r, c, _ := newTest(100, time.Hour)
	for i := range 100_000 {
		e := r.Acquire(fmt.Sprint("host-", i))
		r.Release(e)
		c.t = c.t.Add(time.Millisecond)
		if n := r.Len(); n > 100 {
			t.Fatalf("after %d keys: Len = %d, want <= 100", i+1, n)
		}
	}
	// The most recently used keys are the ones kept.
	if _, ok := r.Peek("host-99999"); !ok {
		t.Error("most recent key was evicted")
	}
	if _, ok := r.Peek("host-0"); ok {
		t.Error("oldest key is still present")
	}
}

func TestShrinksBackAfterBurst(t *testing.T) {
	r, c, _ := newTest(10, time.Hour)
	// 1000 distinct keys in use at once: the registry must grow past its
	// bound, since keys in use are never evicted.
	es := make([]*Entry[int], 1000)
	for i := range es {
		es[i] = r.Acquire(fmt.Sprint("host-", i))
	}
	if n := r.Len(); n != 1000 {
		t.Fatalf("with 1000 keys in use: Len = %d, want 1000", n)
	}
	for _, e := range es {
		c.t = c.t.Add(time.Millisecond)
		r.Release(e)
	}
	if n := r.Len(); n > 10 {
		t.Fatalf("after every key was released: Len = %d, want <= 10", n)
	}
	// The most recently released keys are the ones kept.
	if _, ok := r.Peek("host-999"); !ok {
		t.Error("most recently released key was evicted")
	}
	for i := range 2000 {
		r.Release(r.Acquire(fmt.Sprint("again-", i%20)))
		if n := r.Len(); n > 10 {
			t.Fatalf("after %d more calls: Len = %d, want <= 10", i+1, n)
		}
	}
}

func TestShrinksBackAfterConcurrentBurst(t *testing.T) {
	r := New(10, time.Hour, func(string) int { return 0 })
	var wg sync.WaitGroup
	start := make(chan struct{})
	held := make(chan struct{}, 1000)
	for i := range 1000 {
		wg.Go(func() {
			e := r.Acquire(fmt.Sprint("host-", i))
			held <- struct{}{}
			<-start
			r.Release(e)
		})
	}
	for range 1000 {
		<-held
	}
	close(start)
	wg.Wait()
	if n := r.Len(); n > 10 {
		t.Fatalf("after 1000 concurrent keys ended: Len = %d, want <= 10", n)
	}
}

func TestLongKeysAreStoredBounded(t *testing.T) {
	r, _, made := newTest(10, time.Hour)
	long := strings.Repeat("t", 1<<20) // a client-chosen key of 1 MiB
	e := r.Acquire(long)
	r.Release(e)
	if n := len(e.Key()); n > MaxKeyLen {
		t.Fatalf("stored key is %d bytes, want at most %d", n, MaxKeyLen)
	}
	if again := r.Acquire(long); again != e {
		t.Fatal("the same long key must map to the same entry")
	} else {
		r.Release(again)
	}
	other := r.Acquire(long[1:] + "u")
	r.Release(other)
	if other == e || *made != 2 {
		t.Fatalf("distinct long keys shared an entry (%d values made)", *made)
	}
	if _, ok := r.Peek(long); !ok {
		t.Fatal("Peek must find a long key")
	}
	short := strings.Repeat("s", MaxKeyLen)
	if e := r.Acquire(short); e.Key() != short {
		t.Fatal("a key within the bound must be stored as it is")
	} else {
		r.Release(e)
	}
}

func TestEvictsIdleKeys(t *testing.T) {
	r, c, _ := newTest(1000, time.Minute)
	for i := range 10 {
		r.Release(r.Acquire(fmt.Sprint("k", i)))
	}
	// A sweep finds k0..k9 idle, but Release keeps no time, so it cannot
	// tell for how long: it notes the keys as idle from now on.
	c.t = c.t.Add(61 * time.Second)
	r.Release(r.Acquire("a"))
	if got, want := r.Len(), 11; got != want {
		t.Fatalf("after the first sweep: Len = %d, want %d", got, want)
	}
	c.t = c.t.Add(30 * time.Second)
	r.Release(r.Acquire("k0")) // k0 used again: idle for 31s at the next sweep
	c.t = c.t.Add(31 * time.Second)
	r.Release(r.Acquire("new")) // 61s after the first sweep
	for _, k := range []string{"k0", "a", "new"} {
		if _, ok := r.Peek(k); !ok {
			t.Errorf("%s, used within the idle timeout, was evicted", k)
		}
	}
	if got, want := r.Len(), 3; got != want {
		t.Fatalf("Len = %d, want %d (k0, a and new)", got, want)
	}
}

// TestIdleNeverEvictedEarly checks that no sweep drops a key that was
// released less than the idle timeout ago, whatever the sweeps saw before.
func TestIdleNeverEvictedEarly(t *testing.T) {
	r, c, _ := newTest(1000, time.Minute)
	r.Release(r.Acquire("hot"))
	for i := range 200 {
		// A sweep may run at most every 7.5s: one runs on every step.
		c.t = c.t.Add(8 * time.Second)
		if i%7 == 0 { // used every 56s: never idle for a minute
			r.Release(r.Acquire("hot"))
		}
		r.Release(r.Acquire(fmt.Sprint("k", i)))
		if _, ok := r.Peek("hot"); !ok {
			t.Fatalf("step %d: hot, used at most 56s ago, was evicted", i)
		}
	}
	// The one-off keys were idle for 200*8s: all but the last few are gone.
	if n := r.Len(); n > 20 {
		t.Fatalf("Len = %d, want the idle keys gone", n)
	}
}

// TestReuseWithoutNewKeysIsSeen checks that a key used again after a sweep,
// with no new key made since, is not taken as idle since that sweep.
func TestReuseWithoutNewKeysIsSeen(t *testing.T) {
	r, c, _ := newTest(1000, time.Minute)
	r.Release(r.Acquire("x"))
	c.t = c.t.Add(time.Hour)
	r.Release(r.Acquire("y")) // sweep: x noted idle now
	c.t = c.t.Add(59 * time.Second)
	r.Release(r.Acquire("x")) // used again, no key made since the sweep
	c.t = c.t.Add(59 * time.Second)
	r.Release(r.Acquire("z")) // 118s after the note, 59s after the use
	if _, ok := r.Peek("x"); !ok {
		t.Fatal("x, used 59s ago, was evicted")
	}
}

func TestInUseNeverEvicted(t *testing.T) {
	r, c, _ := newTest(2, time.Second)
	held := r.Acquire("held")
	c.t = c.t.Add(time.Hour)
	for i := range 10 {
		r.Release(r.Acquire(fmt.Sprint("k", i)))
	}
	if e := r.Acquire("held"); e != held {
		t.Fatal("entry in use was replaced")
	} else {
		r.Release(e)
	}
	r.Release(held)
	// All entries are idle again; the registry is back within its bound.
	r.Release(r.Acquire("last"))
	if n := r.Len(); n > 2 {
		t.Fatalf("Len = %d, want <= 2", n)
	}
}

func TestSameValueWhileKept(t *testing.T) {
	r, _, made := newTest(10, time.Minute)
	a := r.Acquire("a")
	b := r.Acquire("a")
	r.Release(a)
	r.Release(b)
	r.Release(r.Acquire("a"))
	if *made != 1 {
		t.Fatalf("made %d values for one key, want 1", *made)
	}
}

func TestConcurrent(t *testing.T) {
	r := New(50, time.Minute, func(key string) string { return key })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint((g*7919 + i) % 300)
				e := r.Acquire(k)
				if e.Value != k || e.Key() != k {
					t.Errorf("Acquire(%q) = %q", k, e.Value)
				}
				r.Release(e)
			}
		})
	}
	wg.Wait()
	if n := r.Len(); n > 50 {
		t.Fatalf("Len = %d, want <= 50", n)
	}
}
