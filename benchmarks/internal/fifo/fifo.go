// Package fifo is the naive upstream of the overload measurements
// (cmd/overload and the scenario suite's client overload): one FIFO queue,
// unbounded, whose requests take a fixed service time each from a pool of
// workers whose size can change while it runs, and which never checks
// whether the caller of a request is still there before doing its work.
package fifo

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Queue is the upstream's queue and its workers. Build it with [New]; it is
// safe for concurrent use.
type Queue struct {
	service time.Duration
	jobs    chan job
	active  atomic.Int64 // workers serving: those numbered below it
	served  atomic.Int64
	wasted  atomic.Int64 // served after the caller had given up
	stop    chan struct{}
	wg      sync.WaitGroup
}

type job struct {
	ctx  context.Context
	done chan struct{}
}

// New starts maxWorkers workers, of which workers serve, each taking
// service per request.
func New(workers, maxWorkers int, service time.Duration) *Queue {
	q := &Queue{service: service, jobs: make(chan job, 1<<20), stop: make(chan struct{})}
	q.active.Store(int64(workers))
	for i := range int64(maxWorkers) {
		q.wg.Go(func() { q.worker(i) })
	}
	return q
}

// SetWorkers changes how many workers serve, up to the maximum given to New.
func (q *Queue) SetWorkers(n int) { q.active.Store(int64(n)) }

// Serve queues a request whose caller's context is ctx and returns once a
// worker has served it: naive, it waits for its turn, and the worker does
// the work, whether or not the caller is still there.
func (q *Queue) Serve(ctx context.Context) {
	j := job{ctx, make(chan struct{})}
	q.jobs <- j
	<-j.done
}

// Counts returns the requests served so far, and how many of them were
// served after their caller had given up.
func (q *Queue) Counts() (served, wasted int64) { return q.served.Load(), q.wasted.Load() }

// Close stops the workers and waits for them. Requests still queued are
// never served: close the HTTP server in front first.
func (q *Queue) Close() {
	close(q.stop)
	q.wg.Wait()
}

func (q *Queue) worker(i int64) {
	for {
		select {
		case <-q.stop:
			return
		default:
		}
		if i >= q.active.Load() {
			time.Sleep(time.Millisecond)
			continue
		}
		select {
		case <-q.stop:
			return
		case j := <-q.jobs:
			time.Sleep(q.service)
			q.served.Add(1)
			if j.ctx.Err() != nil {
				q.wasted.Add(1)
			}
			close(j.done)
		}
	}
}
