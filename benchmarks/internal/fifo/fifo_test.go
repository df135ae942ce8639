package fifo

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// One worker, three requests queued at once, the last one's caller gone:
// served in order, 10ms each, and the gone caller's work counted as wasted.
func TestQueueServesInOrderAndCountsWaste(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New(1, 2, 10*time.Millisecond)
		defer q.Close()
		gone, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		var mu sync.Mutex
		var ends []time.Duration
		var wg sync.WaitGroup
		for _, ctx := range []context.Context{context.Background(), context.Background(), gone} {
			wg.Go(func() {
				q.Serve(ctx)
				mu.Lock()
				ends = append(ends, time.Since(start))
				mu.Unlock()
			})
			synctest.Wait() // queued in this order
		}
		wg.Wait()
		if want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond}; len(ends) != 3 || ends[0] != want[0] || ends[1] != want[1] || ends[2] != want[2] {
			t.Errorf("served at %v, want %v", ends, want)
		}
		if served, wasted := q.Counts(); served != 3 || wasted != 1 {
			t.Errorf("served %d, wasted %d; want 3 and 1", served, wasted)
		}
		q.SetWorkers(2)
	})
}
