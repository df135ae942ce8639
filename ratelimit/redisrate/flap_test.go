package redisrate_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/internal/redistest"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
)

// cutter is a TCP proxy in front of a real redis-server that a test can
// cut: while cut, it closes every connection it carries and every new one
// at once, so a Redis call fails at once, as if Redis went away, while
// Redis itself keeps its data. Its goroutines end with the test.
type cutter struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards the fields below
	cut   bool
	conns map[net.Conn]struct{}

	wg sync.WaitGroup
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	c.wg.Go(c.accept)
	t.Cleanup(func() {
		ln.Close()
		c.setCut(true)
		c.wg.Wait()
	})
	return c
}

func (c *cutter) Addr() string { return c.ln.Addr().String() }

func (c *cutter) accept() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.cut {
			c.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", c.target)
		if err != nil {
			c.mu.Unlock()
			in.Close()
			continue
		}
		c.conns[in], c.conns[out] = struct{}{}, struct{}{}
		c.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		c.wg.Go(func() { pipe(out, in) })
		c.wg.Go(func() { pipe(in, out) })
	}
}

// setCut cuts the proxy (closing every connection) or restores it.
func (c *cutter) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for conn := range c.conns {
			conn.Close()
		}
		clear(c.conns)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestDegradeFlappingKeepsShare: Redis flapping (ten short outages within
// one second) does not give a key a fresh local share per outage. With a
// quota of 10 an hour and two replicas (a share of 5 each), spent through
// Redis before the first outage, one key gets at most the quota from Redis
// plus one share for the window: 10 + 5, within 2 × the quota, where a
// share per outage made it 10 + 10 × 5.
func TestDegradeFlappingKeepsShare(t *testing.T) {
	s := redistest.Start(t)
	p := newCutter(t, s.Addr)
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second, PoolSize: 1000})
	t.Cleanup(func() { c.Close() })
	q := ratelimit.Quota{Name: "q", Limit: 10, Window: time.Hour}
	const share = 5
	const probe = time.Millisecond
	lim := redisrate.New(c, q, redisrate.WithReplicas(2), redisrate.WithProbeInterval(probe))
	clock := newFakeClock()
	redisrate.SetNow(lim, clock.Now)

	admitted, byRedis, local := 0, 0, 0
	admit := func() ratelimit.Decision {
		t.Helper()
		d, err := lim.Admit(t.Context(), "k")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			admitted++
			if d.Quota == q {
				byRedis++
			} else {
				local++
			}
		}
		return d
	}
	for range 2 * q.Limit {
		if d := admit(); d.Quota != q {
			t.Fatalf("with Redis up: %+v, want a decision by Redis", d)
		}
	}
	if admitted != int(q.Limit) {
		t.Fatalf("Redis admitted %d of %d requests, want the quota, %d", admitted, 2*q.Limit, q.Limit)
	}
	for outage := range 10 {
		p.setCut(true)
		for range 10 {
			if d := admit(); d.Quota == q {
				t.Fatalf("outage %d: a decision by Redis while it is cut off: %+v", outage+1, d)
			}
		}
		p.setCut(false)
		// The next probe reaches Redis and ends the outage; a stale
		// pooled connection may fail it, so keep probing.
		deadline := time.Now().Add(10 * time.Second)
		for {
			clock.Advance(probe)
			if d := admit(); d.Quota == q {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outage %d: Redis did not answer again", outage+1)
			}
		}
		clock.Advance(100*time.Millisecond - probe)
	}
	if admitted > 2*int(q.Limit) {
		t.Fatalf("ten short outages in one second: %d admitted for one key (%d by Redis, %d locally), want at most 2 × the quota of %d",
			admitted, byRedis, local, q.Limit)
	}
	if local != share {
		t.Fatalf("%d admitted locally over the ten outages, want one share, %d", local, share)
	}

	// The share is per window: a window later it is whole again, once.
	clock.Advance(q.Window)
	p.setCut(true)
	local = 0
	for range 3 * q.Limit {
		admit()
	}
	if local != share {
		t.Fatalf("an outage a window later: %d admitted locally, want a whole share, %d", local, share)
	}

	// With Redis back, the share is kept for a window after its last
	// decision, then dropped: its buckets were all full.
	p.setCut(false)
	recovered := false
	for range 1000 {
		clock.Advance(probe)
		if d := admit(); d.Quota == q {
			recovered = true
			break
		}
	}
	if !recovered || !redisrate.HasShare(lim) {
		t.Fatalf("after recovery: recovered %v, share kept %v; want both", recovered, redisrate.HasShare(lim))
	}
	clock.Advance(q.Window)
	if d := admit(); d.Quota != q || redisrate.HasShare(lim) {
		t.Fatalf("a window later with Redis up: %+v, share kept %v; want a decision by Redis and the share dropped", d, redisrate.HasShare(lim))
	}
}

// TestZeroLimiter: the zero Limiter answers with an error, not a panic.
func TestZeroLimiter(t *testing.T) {
	var lim redisrate.Limiter
	if _, err := lim.Admit(t.Context(), "k"); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("Admit on a zero Limiter: %v, want ErrUnavailable", err)
	}
	if n := lim.Replicas(); n != 1 {
		t.Fatalf("Replicas = %d, want 1", n)
	}
}
