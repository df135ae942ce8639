package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/resiliencehttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// slowBodyServer sends each response's headers and first bytes at once,
// then waits for the test to let it finish the body. It counts the requests
// in flight and the most it ever saw.
type slowBodyServer struct {
	*httptest.Server
	arrived  chan struct{}
	proceed  chan struct{}
	inFlight atomic.Int64
	maxSeen  atomic.Int64
}

func newSlowBodyServer(t *testing.T) *slowBodyServer {
	t.Helper()
	s := &slowBodyServer{arrived: make(chan struct{}, 100), proceed: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.inFlight.Add(1)
		// Decremented before the handler returns, which is before the
		// client can read the end of the body.
		defer s.inFlight.Add(-1)
		for {
			m := s.maxSeen.Load()
			if n <= m || s.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		io.WriteString(w, "first part;")
		w.(http.Flusher).Flush()
		s.arrived <- struct{}{}
		select {
		case <-s.proceed:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second part")
	}))
	t.Cleanup(s.Close)
	return s
}

func TestServerNeverSeesMoreThanLimit(t *testing.T) {
	srv := newSlowBodyServer(t)
	const limit, calls = 3, 12
	c := &http.Client{Transport: resiliencehttp.NewTransport(nil, bulkhead.New(limit, bulkhead.WithMaxWait(time.Minute)))}
	defer c.CloseIdleConnections()

	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			resp, err := c.Get(srv.URL)
			if err != nil {
				errs <- err
				return
			}
			// RoundTrip has returned; the body is still open until
			// the server finishes it.
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "first part;second part" {
				errs <- fmt.Errorf("body %q, %v", body, err)
			}
		})
	}
	// Let the first limit requests arrive, then finish one body at a
	// time: each finished body lets exactly one more request through.
	for i := range calls {
		<-srv.arrived
		if n := srv.inFlight.Load(); n > limit {
			t.Errorf("arrival %d: %d requests in flight, want <= %d", i+1, n, limit)
		}
		if i >= limit-1 {
			srv.proceed <- struct{}{}
		}
	}
	for range limit - 1 {
		srv.proceed <- struct{}{}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := srv.maxSeen.Load(); m != limit {
		t.Fatalf("server saw at most %d requests in flight, want exactly %d", m, limit)
	}
}

func TestSlotHeldUntilBodyClosed(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	c := &http.Client{Transport: resiliencehttp.NewTransport(nil, bulkhead.New(1))}
	defer c.CloseIdleConnections()

	first, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(srv.URL)
	if !errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("second call with the first body open: got %v, want ErrFull", err)
	}
	if k := resilience.Classify(err); k != resilience.KindThrottled {
		t.Errorf("Classify(ErrFull) = %v, want throttled", k)
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
	first.Body.Close()
	second, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("after the first body was closed: %v", err)
	}
	io.ReadAll(second.Body) // reading to the end gives the slot back too
	third, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("after the second body was read: %v", err)
	}
	third.Body.Close()
}

// holdSlot takes b's only slot until the returned function is called.
func holdSlot(t *testing.T, b resilience.Policy) (release func()) {
	t.Helper()
	taken, done := make(chan struct{}), make(chan struct{})
	go b.Do(t.Context(), func(context.Context) error {
		close(taken)
		<-done
		return nil
	})
	<-taken
	return sync.OnceFunc(func() { close(done) })
}

func TestMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New(1, bulkhead.WithMaxWait(100*time.Millisecond))
		release := holdSlot(t, b)
		defer release()
		start := time.Now()
		err := b.Do(t.Context(), func(context.Context) error { t.Error("op ran"); return nil })
		if !errors.Is(err, bulkhead.ErrFull) {
			t.Fatalf("got %v, want ErrFull", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("failed after %v, want 100ms", d)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New(1, bulkhead.WithMaxWait(100*time.Millisecond))
		release := holdSlot(t, b)
		time.AfterFunc(40*time.Millisecond, release)
		start := time.Now()
		if err := b.Do(t.Context(), func(context.Context) error { return nil }); err != nil {
			t.Fatalf("slot freed within the wait: got %v", err)
		}
		if d := time.Since(start); d != 40*time.Millisecond {
			t.Fatalf("ran after %v, want 40ms", d)
		}
	})
}

func TestFailsAtOnceWithoutWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New(1)
		release := holdSlot(t, b)
		defer release()
		start := time.Now()
		if err := b.Do(t.Context(), func(context.Context) error { return nil }); !errors.Is(err, bulkhead.ErrFull) {
			t.Fatalf("got %v, want ErrFull", err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("failed after %v, want at once", d)
		}
	})
}

func TestCallerCancelsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New(1, bulkhead.WithMaxWait(time.Minute))
		release := holdSlot(t, b)
		defer release()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := b.Do(ctx, func(context.Context) error { return nil }); err != context.DeadlineExceeded {
			t.Fatalf("got %v, want the caller's context.DeadlineExceeded", err)
		}
	})
}

func TestPanicGivesSlotBack(t *testing.T) {
	b := bulkhead.New(1)
	func() {
		defer func() { recover() }()
		b.Do(t.Context(), func(context.Context) error { panic("boom") })
	}()
	if err := b.Do(t.Context(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("after a panic: got %v, want the slot back", err)
	}
}

type keyCtx struct{}

func withKey(ctx context.Context, k string) context.Context {
	return context.WithValue(ctx, keyCtx{}, k)
}

func keyFrom(ctx context.Context) string { s, _ := ctx.Value(keyCtx{}).(string); return s }

func TestKeyed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := bulkhead.NewKeyed(1, bulkhead.WithKey(keyFrom), bulkhead.WithMaxKeys(10), bulkhead.WithIdleTimeout(time.Minute))
		ctxA := withKey(t.Context(), "a")
		release := holdSlot(t, resilience.PolicyFunc(func(_ context.Context, op func(context.Context) error) error {
			return k.Do(ctxA, op)
		}))
		noop := func(context.Context) error { return nil }
		if err := k.Do(withKey(t.Context(), "b"), noop); err != nil {
			t.Fatalf("key b while a is full: %v", err)
		}
		// Many other keys pass through; a's bulkhead, in use, stays.
		for i := range 1000 {
			k.Do(withKey(t.Context(), fmt.Sprint("k", i)), noop)
			if n := k.Len(); n > 11 {
				t.Fatalf("Len = %d, want <= 11 (10 idle and a)", n)
			}
		}
		if err := k.Do(ctxA, noop); !errors.Is(err, bulkhead.ErrFull) {
			t.Fatalf("key a: got %v, want ErrFull (its limit holds)", err)
		}
		release()
		synctest.Wait()
		// The first sweep notes the keys idle; the next, an idle timeout
		// later, drops them (Release keeps no time: see internal/keyed).
		time.Sleep(2 * time.Minute)
		k.Do(withKey(t.Context(), "mark"), noop)
		time.Sleep(2 * time.Minute)
		k.Do(withKey(t.Context(), "last"), noop)
		if n := k.Len(); n != 2 {
			t.Fatalf("after the idle timeout: Len = %d, want 2 (mark and last)", n)
		}
	})
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		f    func()
		want string
	}{
		{func() { bulkhead.New(0) }, "bulkhead: New: limit must be at least 1, got 0"},
		{func() { bulkhead.NewKeyed(-1) }, "bulkhead: NewKeyed: limit"},
		{func() { bulkhead.New(1, bulkhead.WithMaxWait(-1)) }, "bulkhead: WithMaxWait"},
		{func() { bulkhead.New(1, bulkhead.WithMaxKeys(3)) }, "bulkhead: New: WithMaxKeys applies to NewKeyed only"},
		{func() { bulkhead.NewKeyed(1, bulkhead.WithIdleTimeout(0)) }, "bulkhead: WithIdleTimeout"},
	}
	for _, tt := range tests {
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

func BenchmarkBulkhead(b *testing.B) {
	bh := bulkhead.New(100)
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		bh.Do(ctx, op)
	}
}

func BenchmarkKeyed(b *testing.B) {
	k := bulkhead.NewKeyed(100)
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443"})
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		k.Do(ctx, op)
	}
}

func TestErrFullNamesCommonCause(t *testing.T) {
	if !strings.Contains(bulkhead.ErrFull.Error(), "unclosed response bodies") {
		t.Errorf("ErrFull = %q, want it to name unclosed response bodies as a common cause", bulkhead.ErrFull)
	}
}

func TestNilOptionNamed(t *testing.T) {
	for name, build := range map[string]func(){
		"bulkhead: New: option 0 is nil":      func() { bulkhead.New(1, nil) },
		"bulkhead: NewKeyed: option 0 is nil": func() { bulkhead.NewKeyed(1, nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r != name {
					t.Errorf("panic %v, want %q", r, name)
				}
			}()
			build()
		}()
	}
}

// After 1000 concurrent distinct hosts, a keyed bulkhead with
// WithMaxKeys(10) shrinks back to 10 keys as their calls end.
func TestKeyedShrinksBackAfterBurst(t *testing.T) {
	k := bulkhead.NewKeyed(1, bulkhead.WithMaxKeys(10))
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		release = make(chan struct{})
	)
	for i := range 1000 {
		started.Add(1)
		wg.Go(func() {
			ctx := resilience.WithCall(context.Background(), resilience.Call{Target: fmt.Sprintf("h%d:443", i)})
			k.Do(ctx, func(context.Context) error {
				started.Done()
				<-release
				return nil
			})
		})
	}
	started.Wait()
	if n := k.Len(); n != 1000 {
		t.Fatalf("with 1000 calls in flight: Len = %d, want 1000", n)
	}
	close(release)
	wg.Wait()
	if n := k.Len(); n > 10 {
		t.Fatalf("after the burst: Len = %d, want at most 10", n)
	}
	for i := range 2000 {
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: fmt.Sprintf("again%d:443", i%20)})
		k.Do(ctx, func(context.Context) error { return nil })
	}
	if n := k.Len(); n > 10 {
		t.Fatalf("after 2000 more calls: Len = %d, want at most 10", n)
	}
}
