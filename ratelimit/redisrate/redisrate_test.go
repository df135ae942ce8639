package redisrate_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/resilience-go/resilience/internal/redistest"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client returns a go-redis client for s that gives up at once when Redis
// is down, closed when the test ends. Its pool is large because go-redis
// starts a goroutine that redials once a second when the failed dials reach
// the pool size, and that goroutine outlives Close by up to a second, which
// goleak would report.
func client(t *testing.T, s *redistest.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second, PoolSize: 1000})
	t.Cleanup(func() { c.Close() })
	return c
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

func tenant(r *http.Request) string { return r.Header.Get("Tenant") }

// state parses the RateLimit field of a response: quota → r and t.
func state(t *testing.T, h http.Header) map[string]map[string]int64 {
	t.Helper()
	v := h.Get(ratelimit.StateHeader)
	if v == "" {
		return nil
	}
	l, err := httpsfv.UnmarshalList([]string{v})
	if err != nil {
		t.Fatalf("RateLimit %q: %v", v, err)
	}
	out := map[string]map[string]int64{}
	for _, m := range l {
		it := m.(httpsfv.Item)
		ps := map[string]int64{}
		for _, k := range it.Params.Names() {
			p, _ := it.Params.Get(k)
			ps[k], _ = p.(int64)
		}
		out[it.Value.(string)] = ps
	}
	return out
}

func do(t *testing.T, url, tenantKey string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Tenant", tenantKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestSharedQuota runs two server instances, each with its own limiter and
// Redis client, sharing one Redis: together they admit the quota. The
// quota refills one request every 72s, far beyond the test's run time, so
// the count is exact without any wall-clock margin.
func TestSharedQuota(t *testing.T) {
	s := redistest.Start(t)
	q := ratelimit.Quota{Name: "tenant", Limit: 50, Window: time.Hour}
	var urls []string
	for range 2 {
		lim := redisrate.New(client(t, s), q)
		srv := httptest.NewServer(ratelimit.Middleware(lim, tenant)(ok))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	var (
		mu        sync.Mutex
		admitted  int
		remaining []int64
		wg        sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := range 15 {
				resp := do(t, urls[(g+i)%2], "acme")
				st := state(t, resp.Header)["tenant"]
				mu.Lock()
				switch resp.StatusCode {
				case 200:
					admitted++
					remaining = append(remaining, st["r"])
				case 429:
					if resp.Header.Get("Retry-After") == "" || st["r"] != 0 {
						t.Errorf("429 with Retry-After %q and r=%d", resp.Header.Get("Retry-After"), st["r"])
					}
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted < 49 || admitted > 51 {
		t.Fatalf("the two instances admitted %d requests, want 50 (±1)", admitted)
	}
	// Each admitted request saw a different remaining count: the shared
	// state is consistent with what was admitted.
	slices.Sort(remaining)
	for i, r := range remaining {
		if r != int64(i) {
			t.Fatalf("remaining counts %v, want 0..%d once each", remaining, admitted-1)
		}
	}
	if resp := do(t, urls[0], "other"); resp.StatusCode != 200 {
		t.Fatalf("another tenant: %d, want 200", resp.StatusCode)
	}
}

// TestRedisKeys checks the keys in Redis: bounded in size whatever the
// client sends, one Cluster hash tag each, and expiring.
func TestRedisKeys(t *testing.T) {
	s := redistest.Start(t)
	c := client(t, s)
	lim := redisrate.New(c, ratelimit.Quota{Name: "ip", Limit: 10, Window: time.Minute}, redisrate.WithPrefix("rl:"))
	for _, k := range []string{"short", strings.Repeat("k", 1<<20), "a}b{c"} {
		if d, err := lim.Admit(t.Context(), k); err != nil || !d.Allowed {
			t.Fatalf("Admit(%.10q): %+v, %v", k, d, err)
		}
	}
	keys, err := c.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if len(keys) != 4 || keys[0] != "rl:ip:replicas" {
		t.Fatalf("keys %q, want 3 keys and the replicas' heartbeats", keys)
	}
	for _, k := range keys[1:] {
		if !strings.HasPrefix(k, "rl:ip:{") || !strings.HasSuffix(k, "}") || strings.Count(k, "{") != 1 || len(k) > 100 {
			t.Errorf("key %q: want rl:ip:{<at most %d bytes>}, one hash tag", k, ratelimit.MaxKeyLen)
		}
		ttl, err := c.PTTL(t.Context(), k).Result()
		if err != nil || ttl <= 0 || ttl > 6*time.Second+time.Millisecond {
			t.Errorf("key %q: PTTL %v, %v; want (0, 6s]: the time until its quota is whole", k, ttl, err)
		}
	}
}

func TestInvalidConfigPanics(t *testing.T) {
	s := redistest.Start(t)
	c := client(t, s)
	q := ratelimit.Quota{Name: "q", Limit: 1, Window: time.Second}
	for _, tt := range []struct {
		f    func()
		want string
	}{
		{func() { redisrate.New(nil, q) }, "redisrate: New: client is nil"},
		{func() { redisrate.New(c, ratelimit.Quota{Name: "q"}) }, "redisrate: New: quota \"q\": limit"},
		{func() { redisrate.New(c, ratelimit.Quota{Name: "{q}", Limit: 1, Window: time.Second}) }, "redisrate: New: the quota name must not contain braces"},
		{func() { redisrate.New(c, ratelimit.Quota{Name: "q", Limit: 1e7, Window: time.Second}) }, "redisrate: New: quota \"q\" allows more than one request per microsecond"},
		{func() { redisrate.New(c, q, redisrate.WithPrefix("{x}")) }, "redisrate: WithPrefix"},
		{func() { redisrate.New(c, q, redisrate.WithMode(7)) }, "redisrate: WithMode"},
		{func() { redisrate.New(c, q, redisrate.WithLease(5, 0)) }, "redisrate: WithLease"},
		{func() { redisrate.New(c, q, redisrate.WithReplicas(-1)) }, "redisrate: WithReplicas"},
	} {
		func() {
			defer func() {
				if s, _ := recover().(string); !strings.HasPrefix(s, tt.want) {
					t.Errorf("got panic %q, want %q", s, tt.want)
				}
			}()
			tt.f()
		}()
	}
}

// untilRecovered admits requests until one is decided by Redis again: it
// carries the full quota's policy. Redis was emptied by the restart.
func untilRecovered(t *testing.T, lim *redisrate.Limiter, key string) ratelimit.Decision {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		d, err := lim.Admit(t.Context(), key)
		if err == nil && d.Quota == lim.Quota() && d.Remaining == lim.Quota().Limit-1 {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the limiter did not go back to Redis after it restarted")
	return ratelimit.Decision{}
}

func TestFailureModes(t *testing.T) {
	q := ratelimit.Quota{Name: "q", Limit: 10, Window: time.Hour}
	for _, tt := range []struct {
		mode redisrate.Mode
		// status of the first requests during the outage, and of the
		// one after the first len(statuses).
		statuses []int
	}{
		{redisrate.FailOpen, []int{200, 200, 200, 200, 200, 200, 200}},
		{redisrate.FailClosed, []int{503, 503}},
		// Two replicas: this one keeps to 5 of the 10.
		{redisrate.Degrade, []int{200, 200, 200, 200, 200, 429, 429}},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			s := redistest.Start(t)
			h := telemetrytest.New(t)
			lim := redisrate.New(client(t, s), q, redisrate.WithMode(tt.mode), redisrate.WithReplicas(2),
				redisrate.WithProbeInterval(10*time.Millisecond),
				redisrate.WithMeterProvider(h.MeterProvider), redisrate.WithTracerProvider(h.TracerProvider))
			srv := httptest.NewServer(ratelimit.Middleware(lim, tenant)(ok))
			defer srv.Close()
			for range 3 {
				if resp := do(t, srv.URL, "a"); resp.StatusCode != 200 {
					t.Fatalf("with Redis up: %d", resp.StatusCode)
				}
			}
			s.Stop()
			for i, want := range tt.statuses {
				resp := do(t, srv.URL, "a")
				if resp.StatusCode != want {
					t.Fatalf("outage request %d: %d, want %d", i+1, resp.StatusCode, want)
				}
				st := state(t, resp.Header)
				switch tt.mode {
				case redisrate.FailOpen:
					if st != nil {
						t.Errorf("fail open: RateLimit %v, want none (nothing is known)", st)
					}
				case redisrate.Degrade:
					if got := st["q"]["r"]; want == 200 && got != int64(4-i) {
						t.Errorf("degraded request %d: r=%d, want %d (of this replica's 5)", i+1, got, 4-i)
					}
				}
			}
			s.Restart()
			d := untilRecovered(t, lim, "a")
			if !d.Allowed {
				t.Fatalf("after recovery: %+v", d)
			}
			ms := h.Collect(t)
			ev := telemetrytest.Points(t, ms, "resilience.events", "{event}")
			got := map[string]bool{}
			for k, v := range ev {
				for _, e := range []string{"store_error", "degraded", "recovered"} {
					if strings.Contains(k, "resilience.event="+e) && v > 0 {
						got[e] = true
					}
				}
			}
			if want := map[string]bool{"store_error": true, "degraded": true, "recovered": true}; !maps.Equal(got, want) {
				t.Errorf("events %v: want store errors, degraded decisions and a recovery counted", ev)
			}
		})
	}
}

// TestDegradedReplicasLearned: two replicas learn from Redis that they are
// two; during an outage they admit together about the quota, not twice it.
func TestDegradedReplicasLearned(t *testing.T) {
	s := redistest.Start(t)
	q := ratelimit.Quota{Name: "q", Limit: 40, Window: time.Hour}
	var lims []*redisrate.Limiter
	for range 2 {
		lims = append(lims, redisrate.New(client(t, s), q,
			redisrate.WithHeartbeat(100*time.Millisecond), redisrate.WithProbeInterval(time.Hour)))
	}
	// Heartbeats ride on requests, one per 100ms at most, and count for
	// 300ms; keep admitting until both have seen each other.
	deadline := time.Now().Add(20 * time.Second)
	for lims[0].Replicas() != 2 || lims[1].Replicas() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("replicas learned: %d, %d; want 2, 2", lims[0].Replicas(), lims[1].Replicas())
		}
		for _, l := range lims {
			l.Admit(t.Context(), "warmup")
		}
		time.Sleep(110 * time.Millisecond)
	}
	s.Stop()
	admitted := 0
	for range 3 * q.Limit {
		for _, l := range lims {
			d, err := l.Admit(t.Context(), "k")
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed {
				admitted++
			}
		}
	}
	if admitted < int(q.Limit)-2 || admitted > int(q.Limit) {
		t.Fatalf("two degraded replicas admitted %d, want about the quota of %d (not twice it)", admitted, q.Limit)
	}
}

// TestLeasing: two replicas leasing slices of 8 admit together the quota,
// within one slice per replica, in far fewer Redis calls than requests.
func TestLeasing(t *testing.T) {
	s := redistest.Start(t)
	q := ratelimit.Quota{Name: "q", Limit: 100, Window: time.Hour}
	const slice = 8
	c0 := client(t, s)
	lims := []*redisrate.Limiter{
		redisrate.New(c0, q, redisrate.WithLease(slice, time.Hour)),
		redisrate.New(client(t, s), q, redisrate.WithLease(slice, time.Hour)),
	}
	before := evalCalls(t, c0)
	admitted, requests := 0, 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := range 8 {
		wg.Go(func() {
			for range 40 {
				d, err := lims[g%2].Admit(context.Background(), "k")
				mu.Lock()
				requests++
				if err != nil {
					t.Error(err)
				} else if d.Allowed {
					admitted++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted < int(q.Limit)-2*slice || admitted > int(q.Limit)+2*slice {
		t.Fatalf("admitted %d, want %d within one slice (%d) per replica", admitted, q.Limit, slice)
	}
	calls := evalCalls(t, c0) - before
	if calls > int64(requests)/4 {
		t.Fatalf("%d script calls for %d requests: leasing should need about one per slice", calls, requests)
	}
}

// evalCalls returns how many scripts Redis has run.
func evalCalls(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:", "cmdstat_eval:"} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd+"calls="); ok {
				var k int64
				for _, ch := range rest {
					if ch < '0' || ch > '9' {
						break
					}
					k = k*10 + int64(ch-'0')
				}
				n += k
			}
		}
	}
	return n
}

func TestCanceledContext(t *testing.T) {
	s := redistest.Start(t)
	lim := redisrate.New(client(t, s), ratelimit.Quota{Name: "q", Limit: 1, Window: time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := lim.Admit(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled (not an outage)", err)
	}
	if d, err := lim.Admit(t.Context(), "k"); err != nil || !d.Allowed || d.Quota != lim.Quota() {
		t.Fatalf("after a canceled call: %+v, %v; want a decision by Redis", d, err)
	}
}

// TestOutageSpanEvents: a decision taken without Redis is a span event on
// the request's span, after the store error that caused it.
func TestOutageSpanEvents(t *testing.T) {
	s := redistest.Start(t)
	h := telemetrytest.New(t)
	lim := redisrate.New(client(t, s), ratelimit.Quota{Name: "q", Limit: 4, Window: time.Hour},
		redisrate.WithReplicas(2), redisrate.WithName("shared"), redisrate.WithProbeInterval(time.Hour),
		redisrate.WithMeterProvider(h.MeterProvider), redisrate.WithTracerProvider(h.TracerProvider))
	s.Stop()
	for range 2 {
		ctx, span := h.Span(t.Context())
		d, err := lim.Admit(ctx, "k")
		span.End()
		if err != nil || !d.Allowed || d.Quota.Limit != 2 {
			t.Fatalf("degraded decision %+v, %v; want admitted under a share of 2", d, err)
		}
	}
	var names []string
	for _, e := range h.Events(t, "caller") {
		if !strings.Contains(e.Attrs, "resilience.name=shared") {
			t.Errorf("event %v without the limiter's name", e)
		}
		names = append(names, e.Name)
	}
	// The first request tried Redis; the second did not (the next probe is
	// an hour away).
	want := []string{"resilience.ratelimit_server.store_error", "resilience.ratelimit_server.degraded", "resilience.ratelimit_server.degraded"}
	if !slices.Equal(names, want) {
		t.Fatalf("span events %v, want %v", names, want)
	}
}

// TestConcurrentExact: 64 goroutines deciding at once on one limiter (their
// scripts pipelined together) admit the quota exactly, each seeing its own
// remaining count; a SCRIPT FLUSH midway changes nothing.
func TestConcurrentExact(t *testing.T) {
	s := redistest.Start(t)
	c := client(t, s)
	q := ratelimit.Quota{Name: "q", Limit: 300, Window: time.Hour}
	lim := redisrate.New(c, q, redisrate.WithReplicas(1))
	var (
		mu        sync.Mutex
		remaining []int64
		wg        sync.WaitGroup
	)
	for g := range 64 {
		wg.Go(func() {
			for i := range 10 {
				if g == 0 && i == 5 {
					if err := c.ScriptFlush(context.Background()).Err(); err != nil {
						t.Error(err)
					}
				}
				d, err := lim.Admit(context.Background(), "k")
				if err != nil || d.Quota != q {
					t.Errorf("decision %+v, %v; want one by Redis", d, err)
					return
				}
				if d.Allowed {
					mu.Lock()
					remaining = append(remaining, d.Remaining)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(remaining) != int(q.Limit) {
		t.Fatalf("admitted %d of 640, want the quota, %d", len(remaining), q.Limit)
	}
	slices.Sort(remaining)
	for i, r := range remaining {
		if r != int64(i) {
			t.Fatalf("remaining counts %v, want 0..%d once each", remaining, q.Limit-1)
		}
	}
}

// TestConcurrentOutage: decisions in flight together when Redis goes away
// all get an answer by the failure mode; none is left waiting.
func TestConcurrentOutage(t *testing.T) {
	s := redistest.Start(t)
	lim := redisrate.New(client(t, s), ratelimit.Quota{Name: "q", Limit: 1000, Window: time.Hour},
		redisrate.WithMode(redisrate.FailClosed), redisrate.WithProbeInterval(time.Hour))
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for g := range 32 {
		wg.Go(func() {
			for i := range 20 {
				if g == 0 && i == 3 {
					s.Stop()
				}
				d, err := lim.Admit(context.Background(), "k")
				mu.Lock()
				switch {
				case errors.Is(err, ratelimit.ErrUnavailable):
					results["unavailable"]++
				case err == nil && d.Allowed:
					results["allowed"]++
				default:
					t.Errorf("decision %+v, %v", d, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if results["unavailable"] == 0 || results["allowed"]+results["unavailable"] != 640 {
		t.Fatalf("results %v: want every decision answered, the later ones unavailable", results)
	}
}
