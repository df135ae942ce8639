package breaker

import (
	"sync"
	"sync/atomic"
	"time"
)

// tally is what a breaker counts beside gobreaker's Counts, over a rolling
// window of buckets of its own: the run of failures, which gobreaker ends
// only with a success while the breaker ends it with any answer from the
// dependency, and slow calls. It follows the outcomes gobreaker counts
// (see Breaker.excluded) and starts afresh at every change of state.
//
// Its buckets roll on the same period as gobreaker's, from the time of the
// last change of state; an outcome is put in the bucket current when it is
// counted, where gobreaker puts it in the bucket current when the call
// began, so the two windows may disagree by one bucket for calls that
// straddle a bucket's end.
type tally struct {
	bucket time.Duration
	// active is sum.run > 0, so that a success, the common outcome, ends
	// no run without taking mu.
	active atomic.Bool

	mu    sync.Mutex // guards the fields below
	start time.Time  // of the current state
	age   int64      // index of the newest bucket since start
	ring  []sideCounts
	sum   sideCounts // over the ring
}

type sideCounts struct {
	run    uint32 // failures of the current run
	slow   uint32 // slow calls, failed or not
	slowOK uint32 // slow calls that succeeded
}

func (t *tally) init(window, bucket time.Duration, now time.Time) {
	t.bucket = bucket
	t.ring = make([]sideCounts, window/bucket)
	t.start = now
}

// add counts outcome v now.
func (t *tally) add(v verdict) {
	switch v {
	case success, answered:
		if !t.active.Load() {
			return
		}
	case neutral:
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roll(now)
	cur := &t.ring[t.age%int64(len(t.ring))]
	switch v {
	case success, answered:
		t.endRun()
	case failure, slowFailure:
		cur.run++
		t.sum.run++
		t.active.Store(true)
		if v == slowFailure {
			cur.slow++
			t.sum.slow++
		}
	case slowSuccess:
		t.endRun()
		cur.slow++
		cur.slowOK++
		t.sum.slow++
		t.sum.slowOK++
	}
}

// sums returns what the window holds now.
func (t *tally) sums(now time.Time) sideCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roll(now)
	return t.sum
}

// reset starts an empty window at now.
func (t *tally) reset(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.ring)
	t.sum = sideCounts{}
	t.start, t.age = now, 0
	t.active.Store(false)
}

// endRun ends the run of failures. t.mu must be held.
func (t *tally) endRun() {
	if t.sum.run == 0 {
		return
	}
	for i := range t.ring {
		t.ring[i].run = 0
	}
	t.sum.run = 0
	t.active.Store(false)
}

// roll drops the buckets that left the window by now. t.mu must be held.
func (t *tally) roll(now time.Time) {
	age := int64(now.Sub(t.start) / t.bucket)
	if age <= t.age {
		return
	}
	n := int64(len(t.ring))
	for a := max(t.age+1, age-n+1); a <= age; a++ {
		s := &t.ring[a%n]
		t.sum.run -= s.run
		t.sum.slow -= s.slow
		t.sum.slowOK -= s.slowOK
		*s = sideCounts{}
	}
	t.age = age
	if t.sum.run == 0 {
		t.active.Store(false)
	}
}
