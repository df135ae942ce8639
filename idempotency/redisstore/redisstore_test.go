package redisstore_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/idempotency/redisstore"
	"github.com/resilience-go/resilience/internal/redistest"
	"github.com/resilience-go/resilience/internal/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client returns a Redis client of srv, closed when the test ends.
func client(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:        srv.Addr,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, // a test of an outage wants the outage, not go-redis's retries
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	s := redisstore.New(client(t, srv))
	storetest.Run(t, s, t.Name()+":", func(d time.Duration) { time.Sleep(d + 20*time.Millisecond) })
}

// TestRefusedRecord: a record Redis refuses (out of memory) leaves the key
// reserved until its lease runs out, as with the memory store.
func TestRefusedRecord(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	s := redisstore.New(rdb)
	ctx := context.Background()
	refuse := func() func() {
		if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	storetest.RefusedRecord(t, s, t.Name(), []byte("a record"), refuse, func(d time.Duration) { time.Sleep(d + 20*time.Millisecond) })
}

func TestClusterSafeKeys(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	s := redisstore.New(rdb, redisstore.WithPrefix("p:"))
	ctx := context.Background()
	if _, _, err := s.Reserve(ctx, "abc", "fp", time.Minute); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "p:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"p:{abc}": true, "p:{abc}:fence": true}
	if len(keys) != 2 || !want[keys[0]] || !want[keys[1]] {
		t.Fatalf("keys: got %v, want %v (one hash tag, one slot)", keys, want)
	}
}

// side is a handler whose side effect is counted; it takes a while, so
// that repeats arrive while it runs.
type side struct {
	runs atomic.Int64
}

func (s *side) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.runs.Add(1)
	time.Sleep(20 * time.Millisecond)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "charged "+string(rune('0'+n)))
}

func post(t testing.TB, c *http.Client, url, key string) (int, string, http.Header) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"amount":100}`))
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return 0, "", nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestExactlyOnce sends 200 concurrent requests with one key to two server
// instances sharing one Redis: the side effect happens once, and every
// response is the recorded one or a 409.
func TestExactlyOnce(t *testing.T) {
	srv := redistest.Start(t)
	var effect side
	var servers [2]*httptest.Server
	for i := range servers {
		mw := idempotency.Middleware(redisstore.New(client(t, srv)))
		servers[i] = httptest.NewServer(mw(&effect))
		t.Cleanup(servers[i].Close)
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	t.Cleanup(c.CloseIdleConnections)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		okBodies = map[string]int{}
		replayed int
		start    = make(chan struct{})
	)
	for i := range 200 {
		wg.Go(func() {
			<-start
			status, body, h := post(t, c, servers[i%2].URL, `"one-key"`)
			mu.Lock()
			defer mu.Unlock()
			statuses[status]++
			if status == http.StatusOK {
				okBodies[body]++
				if h.Get("Idempotent-Replayed") == "true" {
					replayed++
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got := effect.runs.Load(); got != 1 {
		t.Fatalf("side effect ran %d times, want 1", got)
	}
	if statuses[http.StatusOK]+statuses[http.StatusConflict] != 200 {
		t.Errorf("statuses: %v, want only 200 and 409", statuses)
	}
	if len(okBodies) != 1 || okBodies["charged 1"] == 0 {
		t.Errorf("200 bodies: %v, want only the recorded one", okBodies)
	}
	// After the first completed, a repeat at either instance is a replay.
	for _, s := range servers {
		status, body, h := post(t, c, s.URL, `"one-key"`)
		if status != 200 || body != "charged 1" || h.Get("Idempotent-Replayed") != "true" {
			t.Errorf("%s: got %d %q %v, want the replayed record", s.URL, status, body, h)
		}
	}
	t.Logf("statuses %v, %d replays among the 200s", statuses, replayed)
}

// TestRedisDown stops Redis: fail-closed answers 503, fail-open runs the
// handler, and once Redis is back both work again with the same clients.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	var effect side
	closed := httptest.NewServer(idempotency.Middleware(redisstore.New(client(t, srv)))(&effect))
	t.Cleanup(closed.Close)
	open := httptest.NewServer(idempotency.Middleware(redisstore.New(client(t, srv)), idempotency.WithFailOpen())(&effect))
	t.Cleanup(open.Close)
	c := &http.Client{}
	t.Cleanup(c.CloseIdleConnections)

	if status, _, _ := post(t, c, closed.URL, `"before"`); status != 200 {
		t.Fatalf("before the outage: got %d, want 200", status)
	}
	srv.Stop()
	status, body, h := post(t, c, closed.URL, `"during"`)
	if status != http.StatusServiceUnavailable || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("fail closed: got %d %q, want a 503 problem", status, body)
	}
	if !strings.Contains(body, "not run") || !strings.Contains(body, "idempotency store is unavailable") {
		t.Errorf("fail closed: problem %q, want it to say the request was not run because the store is unavailable", body)
	}
	runs := effect.runs.Load()
	if status, _, _ := post(t, c, open.URL, `"during"`); status != 200 || effect.runs.Load() != runs+1 {
		t.Errorf("fail open: got %d, want the handler's 200", status)
	}
	srv.Restart()
	// The clients reconnect on their own; the first command after the
	// restart may still meet the old, broken connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, _ = post(t, c, closed.URL, `"after"`)
		if status == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != 200 {
		t.Fatalf("after the restart: got %d, want 200", status)
	}
	if status, body, h := post(t, c, open.URL, `"after"`); status != 200 || h.Get("Idempotent-Replayed") != "true" || body == "" {
		t.Errorf("after the restart, the other instance: got %d %v, want a replay", status, h)
	}
}

// TestFrozenRedis: with the client options the README shows, a keyed
// request against a Redis that accepts connections but answers nothing
// (CLIENT PAUSE) fails with a 503 that says the store did not answer in
// time, within the client's bound instead of go-redis's defaults (3s read
// timeout, 3 retries).
func TestFrozenRedis(t *testing.T) {
	srv := redistest.Start(t)
	admin := client(t, srv)
	rdb := redis.NewClient(&redis.Options{
		Addr:        srv.Addr,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		PoolTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { rdb.Close() })
	var effect side
	s := httptest.NewServer(idempotency.Middleware(redisstore.New(rdb))(&effect))
	t.Cleanup(s.Close)
	c := &http.Client{}
	t.Cleanup(c.CloseIdleConnections)
	if status, _, _ := post(t, c, s.URL, `"warm"`); status != 200 {
		t.Fatalf("before the freeze: got %d, want 200", status)
	}
	ctx := context.Background()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "5000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "CLIENT", "UNPAUSE") })
	start := time.Now()
	status, body, _ := post(t, c, s.URL, `"frozen"`)
	took := time.Since(start)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "did not answer in time") {
		t.Errorf("frozen store: got %d %q, want a 503 saying the store did not answer in time", status, body)
	}
	if took > 3*time.Second {
		t.Errorf("the 503 took %v, want it within the client's bound (well under the 5s freeze)", took)
	}
	t.Logf("503 after %v", took)
	if effect.runs.Load() != 1 {
		t.Errorf("the handler ran during the freeze")
	}
}

// TestLateHolderCannotOverwrite runs a slow first request whose lease runs
// out; a retry takes the key over and records its response; the first one
// finishes later, and its response is not recorded over the retry's.
func TestLateHolderCannotOverwrite(t *testing.T) {
	srv := redistest.Start(t)
	release := make(chan struct{})
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			<-release
			io.WriteString(w, "first")
			return
		}
		io.WriteString(w, "second")
	})
	const lease = 100 * time.Millisecond
	store := redisstore.New(client(t, srv))
	s := httptest.NewServer(idempotency.Middleware(store, idempotency.WithLease(lease))(h))
	t.Cleanup(s.Close)
	c := &http.Client{}
	t.Cleanup(c.CloseIdleConnections)

	var wg sync.WaitGroup
	var first string
	wg.Go(func() { _, first, _ = post(t, c, s.URL, `"k"`) })
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(lease + 20*time.Millisecond)
	if status, body, _ := post(t, c, s.URL, `"k"`); status != 200 || body != "second" {
		t.Fatalf("retry after the lease: got %d %q, want a new run", status, body)
	}
	close(release)
	wg.Wait()
	if first != "first" {
		t.Errorf("the slow request's own response: got %q", first)
	}
	if status, body, h := post(t, c, s.URL, `"k"`); status != 200 || body != "second" || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("repeat: got %d %q, want the retry's record replayed", status, body)
	}
}

func TestErrorsAreReturned(t *testing.T) {
	srv := redistest.Start(t)
	s := redisstore.New(client(t, srv))
	srv.Stop()
	ctx := context.Background()
	if _, _, err := s.Reserve(ctx, "k", "fp", time.Second); err == nil || !strings.HasPrefix(err.Error(), "redisstore: reserve") {
		t.Errorf("Reserve: got %v, want a redisstore error", err)
	}
	if err := s.Complete(ctx, "k", 1, nil, time.Second); err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		t.Errorf("Complete: got %v, want a connection error", err)
	}
	if _, _, err := s.Get(ctx, "k"); err == nil {
		t.Error("Get: no error")
	}
}

// TestZeroStore: a zero Store is not usable and says so with an error,
// never a panic.
func TestZeroStore(t *testing.T) {
	var s redisstore.Store
	ctx := context.Background()
	if _, _, err := s.Reserve(ctx, "k", "fp", time.Second); err == nil || !strings.Contains(err.Error(), "New") {
		t.Errorf("Reserve: got %v, want an error naming New", err)
	}
	if err := s.Complete(ctx, "k", 1, nil, time.Second); err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		t.Errorf("Complete: got %v, want an error", err)
	}
	if err := s.Release(ctx, "k", 1); err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		t.Errorf("Release: got %v, want an error", err)
	}
	if _, _, err := s.Get(ctx, "k"); err == nil {
		t.Error("Get: no error")
	}
}
