package redisrate

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/internal/redistest"
	"github.com/resilience-go/resilience/ratelimit"
)

// redisTime returns Redis's clock in microseconds, the clock the script
// decides by.
func redisTime(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMicro()
}

// TestBatchedSameAsAlone: the decisions a lone caller takes one at a time,
// each its own script call (the batcher's fast path), and the same
// decisions queued together and sent in one pipeline (the batched path,
// with the scripts loaded in Redis or flushed from it) are the same: the
// same requests granted, the same remaining counts, and the same waits,
// which differ only by when Redis ran each script.
//
// The quota gives one request an hour, so the test runs far within one
// interval: no request's worth of quota comes back while it runs, and the
// expected waits follow from the grants alone, less the Redis time that
// passed between the key's first decision and this one, which lies
// between 0 and the Redis time the whole test took.
func TestBatchedSameAsAlone(t *testing.T) {
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	q := ratelimit.Quota{Name: "q", Limit: 5, Window: 5 * time.Hour}
	l := New(c, q, WithReplicas(1))
	if l.batch == nil {
		t.Fatal("no batcher for a *redis.Client")
	}
	// Requests wanted by each decision: single requests (the exact mode)
	// and leases, some granted in part, the last ones turned away.
	wants := []int64{1, 2, 1, 3, 1, 1, 2}
	ctx := t.Context()
	start := redisTime(t, c)

	var alone []grant
	for _, n := range wants {
		g, err := l.batch.take(ctx, "alone", n)
		if err != nil {
			t.Fatal(err)
		}
		alone = append(alone, g)
	}
	batched := func(key string) []grant {
		batch := make([]*pending, len(wants))
		for i, n := range wants {
			batch[i] = &pending{key: key, n: n, ch: make(chan bool, 1)}
		}
		l.batch.run(ctx, batch)
		gs := make([]grant, len(batch))
		for i, p := range batch {
			if p.err != nil {
				t.Fatalf("%s: decision %d: %v", key, i, p.err)
			}
			gs[i] = p.g
		}
		return gs
	}
	loaded := batched("batched")
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	flushed := batched("flushed")
	took := time.Duration(redisTime(t, c)-start) * time.Microsecond

	// What GCRA decides for wants on a fresh key, with no time passing.
	interval := q.Interval()
	var model []grant
	granted := int64(0)
	for _, n := range wants {
		n = min(n, q.Limit-granted)
		granted += n
		g := grant{n: n, remaining: q.Limit - granted, resetD: time.Duration(granted) * interval}
		if g.remaining == 0 {
			g.retry = interval
		}
		model = append(model, g)
	}
	for name, got := range map[string][]grant{"alone": alone, "batched": loaded, "batched after SCRIPT FLUSH": flushed} {
		for i, g := range got {
			m := model[i]
			if g.n != m.n || g.remaining != m.remaining {
				t.Errorf("%s: decision %d (%d wanted): granted %d, %d remaining; want %d, %d (alone: %d, %d)",
					name, i, wants[i], g.n, g.remaining, m.n, m.remaining, alone[i].n, alone[i].remaining)
			}
			if g.resetD > m.resetD || g.resetD < m.resetD-took {
				t.Errorf("%s: decision %d: reset in %v, want %v less the time since the first decision (at most %v)",
					name, i, g.resetD, m.resetD, took)
			}
			if m.retry == 0 && g.retry != 0 || m.retry != 0 && (g.retry > m.retry || g.retry < m.retry-took) {
				t.Errorf("%s: decision %d: retry in %v, want %v less the time since the first decision (at most %v)",
					name, i, g.retry, m.retry, took)
			}
		}
	}
}
