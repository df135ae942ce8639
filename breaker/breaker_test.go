package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a real HTTP server that answers with its current status and
// counts the requests it sees.
type server struct {
	*httptest.Server
	status atomic.Int64
	seen   atomic.Int64
}

func newServer(t *testing.T, status int) *server {
	t.Helper()
	s := &server{}
	s.status.Store(int64(status))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.seen.Add(1)
		w.WriteHeader(int(s.status.Load()))
		io.WriteString(w, "body")
	}))
	t.Cleanup(s.Close)
	return s
}

// client sends requests through p. It does not keep connections alive, so
// that it can be used inside a synctest bubble while the server runs
// outside it.
func client(t *testing.T, p resilience.Policy) *http.Client {
	t.Helper()
	base := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(base.CloseIdleConnections)
	return &http.Client{Transport: resiliencehttp.NewTransport(base, p)}
}

// get sends a GET and reads and closes the body; it returns the status, or
// the error.
func get(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestOpensProbesAndCloses(t *testing.T) {
	srv := newServer(t, http.StatusServiceUnavailable)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(slow.Close)
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.WithConsecutiveFailures(3), breaker.WithOpenDuration(5*time.Second))
		c := client(t, b)

		for i := range 3 {
			if code, err := get(c, srv.URL); err != nil || code != 503 {
				t.Fatalf("call %d: got %d, %v; want 503, nil", i+1, code, err)
			}
		}
		if got := b.State(); got != breaker.Open {
			t.Fatalf("after 3 failures: state %v, want open", got)
		}

		// Open: calls fail fast, the server sees nothing, and the error
		// says when the next probe goes, but asks for no retry.
		for range 10 {
			_, err := get(c, srv.URL)
			var oe *breaker.OpenError
			if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &oe) {
				t.Fatalf("open breaker: got %v, want ErrOpen", err)
			}
			if want := 5*time.Second + time.Millisecond; oe.RetryIn != want {
				t.Errorf("RetryIn = %v, want %v (just past the open duration)", oe.RetryIn, want)
			}
			if d, ok := resilience.RetryAfter(err); ok {
				t.Errorf("RetryAfter = %v, true; want none: an open breaker fails fast", d)
			}
			if k := resilience.Classify(err); k != resilience.KindRefused || k.Retryable() {
				t.Errorf("Classify = %v, want refused, not retryable", k)
			}
		}
		if got := srv.seen.Load(); got != 3 {
			t.Fatalf("server saw %d requests, want 3", got)
		}

		time.Sleep(2 * time.Second)
		_, err := get(c, srv.URL)
		var oe *breaker.OpenError
		if !errors.As(err, &oe) || oe.RetryIn != 3*time.Second+time.Millisecond {
			t.Fatalf("2s later: got %v, want OpenError with RetryIn 3.001s", err)
		}

		// After the open duration one probe goes through; others are
		// turned away while it is in flight.
		time.Sleep(oe.RetryIn)
		probe := make(chan error, 1)
		go func() {
			_, err := get(c, slow.URL)
			probe <- err
		}()
		<-arrived
		if got := b.State(); got != breaker.HalfOpen {
			t.Fatalf("probe in flight: state %v, want half-open", got)
		}
		_, err = get(c, srv.URL)
		if !errors.As(err, &oe) || !oe.HalfOpen || resilience.Classify(err) != resilience.KindRefused {
			t.Fatalf("second call while probing: got %v, want a refused half-open OpenError", err)
		}
		close(release)
		if err := <-probe; err != nil {
			t.Fatalf("probe: %v", err)
		}
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("after the probe succeeded: state %v, want closed", got)
		}
		srv.status.Store(http.StatusOK)
		if code, err := get(c, srv.URL); err != nil || code != 200 {
			t.Fatalf("closed again: got %d, %v; want 200", code, err)
		}
		if got := srv.seen.Load(); got != 4 {
			t.Fatalf("server saw %d requests, want 4 (3 failures, then 1 after closing)", got)
		}
	})
}

func TestFailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Second))
		fail := func(context.Context) error { return errors.New("down") }
		b.Do(t.Context(), fail)
		time.Sleep(time.Second + time.Nanosecond)
		if got := b.State(); got != breaker.HalfOpen {
			t.Fatalf("state %v, want half-open", got)
		}
		b.Do(t.Context(), fail)
		if got := b.State(); got != breaker.Open {
			t.Fatalf("after a failed probe: state %v, want open", got)
		}
		var oe *breaker.OpenError
		if err := b.Do(t.Context(), fail); !errors.As(err, &oe) || oe.RetryIn != time.Second+time.Millisecond {
			t.Fatalf("got %v, want OpenError with a full open duration", err)
		}
	})
}

func TestRejectionsNeverOpen(t *testing.T) {
	srv := newServer(t, http.StatusNotFound)
	b := breaker.New(breaker.WithConsecutiveFailures(1))
	c := client(t, b)
	for i := range 50 {
		if code, err := get(c, srv.URL); err != nil || code != 404 {
			t.Fatalf("call %d: got %d, %v; want 404", i+1, code, err)
		}
	}
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("after 50 responses 404: state %v, want closed", got)
	}
	if got := srv.seen.Load(); got != 50 {
		t.Fatalf("server saw %d requests, want 50", got)
	}
	srv.status.Store(http.StatusTooManyRequests)
	get(c, srv.URL)
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("after a 429: state %v, want closed", got)
	}
	srv.status.Store(http.StatusInternalServerError)
	get(c, srv.URL)
	if got := b.State(); got != breaker.Open {
		t.Fatalf("after a 500: state %v, want open", got)
	}
}

func TestOutcomesNotCounted(t *testing.T) {
	b := breaker.New(breaker.WithConsecutiveFailures(1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ops := map[string]func(context.Context) error{
		"caller canceled": func(ctx context.Context) error { return ctx.Err() },
		"error while the caller's context is canceled": func(context.Context) error {
			return errors.New("connection reset")
		},
	}
	for name, op := range ops {
		b.Do(ctx, op)
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("%s: state %v, want closed", name, got)
		}
	}
	for _, k := range []resilience.Kind{resilience.KindRejected, resilience.KindThrottled, resilience.KindCanceled} {
		b.Do(t.Context(), func(context.Context) error { return resilience.Mark(errors.New("x"), k) })
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("%v: state %v, want closed", k, got)
		}
	}
	func() {
		defer func() { recover() }()
		b.Do(t.Context(), func(context.Context) error { panic("boom") })
	}()
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("panic: state %v, want closed", got)
	}
	b.Do(t.Context(), func(context.Context) error { return resilience.Mark(errors.New("x"), resilience.KindPermanent) })
	if got := b.State(); got != breaker.Open {
		t.Fatalf("permanent failure: state %v, want open", got)
	}
}

func TestFailureRatioOverRollingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.WithFailureRatio(0.5, 10), breaker.WithWindow(10*time.Second, time.Second))
		ok := func(context.Context) error { return nil }
		fail := func(context.Context) error { return errors.New("down") }
		rejected := func(context.Context) error { return resilience.Mark(errors.New("404"), resilience.KindRejected) }
		run := func(op func(context.Context) error, n int) {
			for range n {
				b.Do(t.Context(), op)
			}
		}

		run(fail, 9)
		run(rejected, 20) // not counted: still below the minimum
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("9 counted calls: state %v, want closed (minimum 10)", got)
		}
		// The failures leave the window; the next ones are mostly
		// successes.
		time.Sleep(10 * time.Second)
		run(ok, 9)
		run(fail, 1)
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("1 failure in 10 within the window: state %v, want closed", got)
		}
		run(fail, 7) // 8 of 17
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("8 failures in 17: state %v, want closed", got)
		}
		run(fail, 1) // 9 of 18
		if got := b.State(); got != breaker.Open {
			t.Fatalf("9 failures in 18: state %v, want open", got)
		}
	})
}

func TestOutageAfterHealthyPeriod(t *testing.T) {
	b := breaker.New(breaker.WithFailureRatio(0.5, 20))
	for range 1000 {
		b.Do(t.Context(), func(context.Context) error { return nil })
	}
	fail := func(context.Context) error { return errors.New("down") }
	for range 19 {
		b.Do(t.Context(), fail)
	}
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("19 failures in a row after 1000 successes: state %v, want closed", got)
	}
	b.Do(t.Context(), fail)
	if got := b.State(); got != breaker.Open {
		t.Fatalf("20 failures in a row after 1000 successes: state %v, want open", got)
	}
}

// An HTTP response is judged by its status, at its headers (gobreaker's
// Execute counts it when RoundTrip returns): a body that fails after a 200
// is the reader's error, and the breaker does not wait for the body.
func TestHTTPOutcomeAtHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "only part of it")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cuts the connection mid-body
	}))
	defer srv.Close()
	b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithHalfOpenProbes(1))
	c := client(t, b)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("headers received: state %v, want closed", got)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("reading the body: no error")
	}
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("body failed after a 200: state %v, want closed (counted at the headers)", got)
	}
}

// A call whose outcome comes at the end of its held result
// (resilience.Call.OutcomeAtEnd, as a gRPC stream) is counted then, from its
// final error, when it committed while the breaker was closed. A probe's
// verdict is its commit: a long-lived stream taken as the probe does not
// keep the breaker half-open (issue 18, item 8).
func TestOutcomeAtEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Second))
		stream := func(final error) (done func()) {
			ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "svc:443", OutcomeAtEnd: true})
			var end func(error)
			if err := b.Do(ctx, func(ctx context.Context) error {
				end = resilience.Hold(ctx, nil)
				return nil
			}); err != nil {
				t.Fatalf("stream start: %v", err)
			}
			return func() { end(final) }
		}
		end := stream(errors.New("stream reset"))
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("stream open: state %v, want closed", got)
		}
		end()
		if got := b.State(); got != breaker.Open {
			t.Fatalf("stream failed at its end: state %v, want open", got)
		}

		time.Sleep(time.Second + time.Millisecond)
		if got := b.State(); got != breaker.HalfOpen {
			t.Fatalf("after the open duration: state %v, want half-open", got)
		}
		end = stream(errors.New("reset, long after")) // the probe commits
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("probe stream committed: state %v, want closed", got)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "svc:443", OutcomeAtEnd: true})
		for i := range 50 {
			if err := b.Do(ctx, func(context.Context) error { return nil }); err != nil {
				t.Fatalf("call %d while the probe stream lives: %v", i+1, err)
			}
		}
		end() // began in an earlier state: not counted
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("the probe's own end changed the state to %v", got)
		}

		// A stream that commits while closed and ends after a change of
		// state is not counted either.
		end = stream(errors.New("stream reset"))
		b.Do(ctx, func(context.Context) error { return errors.New("down") })
		if got := b.State(); got != breaker.Open {
			t.Fatalf("after a failure: state %v, want open", got)
		}
		time.Sleep(time.Second + time.Millisecond)
		b.Do(ctx, func(context.Context) error { return nil }) // a probe: closes
		end()
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("a stale stream's end changed the state to %v", got)
		}

		// A stream that fails at once, without holding, counts at once;
		// one that panics is not counted.
		func() {
			defer func() { recover() }()
			b.Do(ctx, func(context.Context) error { panic("boom") })
		}()
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("panic: state %v, want closed", got)
		}
		b.Do(ctx, func(context.Context) error { return errors.New("refused") })
		if got := b.State(); got != breaker.Open {
			t.Fatalf("failed stream start: state %v, want open", got)
		}
	})
}

func TestStateChangesOutsideLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			b   *breaker.Breaker
			got []string
		)
		b = breaker.New(
			breaker.WithName("db"),
			breaker.WithConsecutiveFailures(1),
			breaker.WithOpenDuration(time.Second),
			breaker.WithOnStateChange(func(name string, from, to breaker.State) {
				// Calling back into the breaker would deadlock if this
				// ran under its lock.
				got = append(got, fmt.Sprintf("%s %v->%v (now %v)", name, from, to, b.State()))
			}),
		)
		b.Do(t.Context(), func(context.Context) error { return errors.New("down") })
		time.Sleep(2 * time.Second)
		b.Do(t.Context(), func(context.Context) error { return nil })
		want := []string{
			"db closed->open (now open)",
			"db open->half-open (now half-open)",
			"db half-open->closed (now closed)",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("state changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestKeyedPerHost(t *testing.T) {
	bad := newServer(t, http.StatusBadGateway)
	good := newServer(t, http.StatusOK)
	k := breaker.NewKeyed(breaker.WithConsecutiveFailures(2))
	c := client(t, k)
	for range 2 {
		get(c, bad.URL)
	}
	badHost := strings.TrimPrefix(bad.URL, "http://")
	if got := k.State(badHost); got != breaker.Open {
		t.Fatalf("bad host: state %v, want open", got)
	}
	_, err := get(c, bad.URL)
	var oe *breaker.OpenError
	if !errors.As(err, &oe) || oe.Name != badHost {
		t.Fatalf("bad host: got %v, want OpenError naming %s", err, badHost)
	}
	for i := range 20 {
		if code, err := get(c, good.URL); err != nil || code != 200 {
			t.Fatalf("good host, call %d: got %d, %v; want 200", i+1, code, err)
		}
	}
	if got := good.seen.Load(); got != 20 {
		t.Fatalf("good host saw %d requests, want 20", got)
	}
	if got := bad.seen.Load(); got != 2 {
		t.Fatalf("bad host saw %d requests, want 2", got)
	}
}

type keyCtx struct{}

func keyFrom(ctx context.Context) string { s, _ := ctx.Value(keyCtx{}).(string); return s }

func TestKeyedBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := breaker.NewKeyed(
			breaker.WithKey(keyFrom),
			breaker.WithMaxKeys(100),
			breaker.WithIdleTimeout(time.Minute),
			breaker.WithConsecutiveFailures(1),
		)
		ok := func(context.Context) error { return nil }
		for i := range 10_000 {
			ctx := context.WithValue(t.Context(), keyCtx{}, fmt.Sprint("tenant-", i))
			k.Do(ctx, ok)
			if n := k.Len(); n > 100 {
				t.Fatalf("after %d keys: Len = %d, want <= 100", i+1, n)
			}
		}
		// The first sweep notes the keys idle, the next one, an idle
		// timeout later, drops them (Release keeps no time).
		time.Sleep(time.Minute + time.Second)
		k.Do(context.WithValue(t.Context(), keyCtx{}, "mark"), ok)
		if n := k.Len(); n < 90 {
			t.Fatalf("after one sweep: Len = %d, want the keys kept until a second sweep", n)
		}
		time.Sleep(time.Minute + time.Second)
		k.Do(context.WithValue(t.Context(), keyCtx{}, "last"), ok)
		if n := k.Len(); n != 2 {
			t.Fatalf("after the idle timeout: Len = %d, want 2 (mark and last)", n)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	var changes atomic.Int64
	b := breaker.New(
		breaker.WithFailureRatio(0.5, 20),
		breaker.WithOpenDuration(time.Millisecond),
		breaker.WithOnStateChange(func(string, breaker.State, breaker.State) { changes.Add(1) }),
	)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				b.Do(t.Context(), func(context.Context) error {
					if (g+i)%3 == 0 {
						return errors.New("down")
					}
					return nil
				})
				b.State()
			}
		})
	}
	wg.Wait()
	_ = changes.Load()
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		opts []breaker.Option
		want string
	}{
		{[]breaker.Option{breaker.WithFailureRatio(2, 10)}, "breaker: WithFailureRatio: ratio must be in (0, 1], got 2"},
		{[]breaker.Option{breaker.WithFailureRatio(0.5, 0)}, "breaker: WithFailureRatio: minCalls"},
		{[]breaker.Option{breaker.WithConsecutiveFailures(0)}, "breaker: WithConsecutiveFailures"},
		{[]breaker.Option{breaker.WithWindow(10*time.Second, 3*time.Second)}, "breaker: WithWindow"},
		{[]breaker.Option{breaker.WithWindow(time.Second, 0)}, "breaker: WithWindow"},
		{[]breaker.Option{breaker.WithWindow(time.Hour, time.Nanosecond)}, "breaker: WithWindow: at most 100 buckets"},
		{[]breaker.Option{breaker.WithWindow(101*time.Second, time.Second)}, "breaker: WithWindow: at most 100 buckets"},
		{[]breaker.Option{breaker.WithSlowCalls(0, 0.5)}, "breaker: WithSlowCalls"},
		{[]breaker.Option{breaker.WithSlowCalls(time.Second, 0)}, "breaker: WithSlowCalls"},
		{[]breaker.Option{breaker.WithSlowCalls(time.Second, 1.5)}, "breaker: WithSlowCalls"},
		{[]breaker.Option{breaker.WithOpenDuration(0)}, "breaker: WithOpenDuration"},
		{[]breaker.Option{breaker.WithHalfOpenProbes(0)}, "breaker: WithHalfOpenProbes"},
		{[]breaker.Option{breaker.WithMaxKeys(5)}, "breaker: New: WithMaxKeys applies to NewKeyed only"},
		{[]breaker.Option{breaker.WithKey(keyFrom)}, "breaker: New: WithKey applies to NewKeyed only"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, tt.want) {
					t.Errorf("got panic %v, want %q", r, tt.want)
				}
			}()
			breaker.New(tt.opts...)
		}()
	}
	func() {
		defer func() {
			if s, _ := recover().(string); !strings.HasPrefix(s, "breaker: WithMaxKeys") {
				t.Errorf("NewKeyed(WithMaxKeys(0)): got panic %q", s)
			}
		}()
		breaker.NewKeyed(breaker.WithMaxKeys(0))
	}()
}

func TestOptionsComparable(t *testing.T) {
	if breaker.WithFailureRatio(0.5, 20) != breaker.WithFailureRatio(0.5, 20) {
		t.Error("equal options compare unequal")
	}
	if breaker.WithOpenDuration(time.Second) == breaker.WithOpenDuration(2*time.Second) {
		t.Error("different options compare equal")
	}
}

func BenchmarkBreaker(b *testing.B) {
	br := breaker.New()
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		br.Do(ctx, op)
	}
}

func BenchmarkKeyed(b *testing.B) {
	k := breaker.NewKeyed()
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443"})
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		k.Do(ctx, op)
	}
}

// hangingServer is a real HTTP server whose handler answers only when the
// request is canceled, or when the test ends.
func hangingServer(t *testing.T) (srv *httptest.Server, arrived <-chan struct{}) {
	t.Helper()
	stop := make(chan struct{})
	in := make(chan struct{}, 100)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv, in
}

// The caller's own deadline or cancellation, and an outer total timeout,
// never count against the dependency; an attempt timeout inside the
// breaker, which ends the attempt while the call goes on, does.
func TestCallerDeadlineNeverCountsHTTP(t *testing.T) {
	srv, arrived := hangingServer(t)
	const short = 20 * time.Millisecond
	for _, tt := range []struct {
		name     string
		policies func(b *breaker.Breaker) []resilience.Policy
		ctx      func() (context.Context, context.CancelFunc)
		want     breaker.State
	}{
		{"caller's deadline", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{b, timeout.New(time.Minute)}
		}, func() (context.Context, context.CancelFunc) { return context.WithTimeout(t.Context(), short) }, breaker.Closed},
		{"caller cancels", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{b, timeout.New(time.Minute)}
		}, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			go func() { <-arrived; cancel() }()
			return ctx, cancel
		}, breaker.Closed},
		{"total timeout outside the breaker", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{timeout.New(short), b, timeout.New(time.Minute)}
		}, func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) }, breaker.Closed},
		{"attempt timeout inside the breaker", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{b, timeout.New(short)}
		}, func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) }, breaker.Open},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := breaker.New(breaker.WithConsecutiveFailures(1))
			c := client(t, resilience.Chain(tt.policies(b)...))
			for range 3 {
				ctx, cancel := tt.ctx()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				resp, err := c.Do(req)
				cancel()
				if err == nil {
					resp.Body.Close()
					t.Fatal("a hanging server answered")
				}
				if errors.Is(err, breaker.ErrOpen) {
					break
				}
			}
			if got := b.State(); got != tt.want {
				t.Fatalf("state %v, want %v", got, tt.want)
			}
		})
	}
}

// Throttled and rejected answers between failures end the run of
// failures: a host that answers every other call with a 429 or a 404 is
// alive. 20 failures in a row still open the breaker.
func TestAnswersEndRunOfFailures(t *testing.T) {
	srv := newServer(t, http.StatusServiceUnavailable)
	b := breaker.New() // 20 in a row, or half of at least 100
	c := client(t, b)
	for i := range 60 {
		srv.status.Store(http.StatusServiceUnavailable)
		get(c, srv.URL)
		srv.status.Store([]int64{http.StatusTooManyRequests, http.StatusNotFound}[i%2])
		get(c, srv.URL)
	}
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("60 failures, each followed by a 429 or 404: state %v, want closed", got)
	}
	srv.status.Store(http.StatusServiceUnavailable)
	for range 19 {
		get(c, srv.URL)
	}
	if got := b.State(); got != breaker.Closed {
		t.Fatalf("19 failures in a row: state %v, want closed", got)
	}
	get(c, srv.URL)
	if got := b.State(); got != breaker.Open {
		t.Fatalf("20 failures in a row: state %v, want open", got)
	}
}

// What says nothing about the dependency (the caller's cancellation, a
// refusal by a policy) neither extends a run of failures nor ends it; and
// failures that left the window leave the run.
func TestRunOfFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.WithConsecutiveFailures(5), breaker.WithWindow(10*time.Second, time.Second))
		fail := func(context.Context) error { return errors.New("down") }
		canceled, cancel := context.WithCancel(t.Context())
		cancel()
		for range 4 {
			b.Do(t.Context(), fail)
			b.Do(canceled, fail)
			b.Do(t.Context(), func(context.Context) error {
				return resilience.Mark(errors.New("bulkhead full"), resilience.KindRefused)
			})
		}
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("4 failures: state %v, want closed", got)
		}
		b.Do(t.Context(), fail)
		if got := b.State(); got != breaker.Open {
			t.Fatalf("5 failures with only neutral outcomes between: state %v, want open", got)
		}

		b = breaker.New(breaker.WithConsecutiveFailures(5), breaker.WithWindow(10*time.Second, time.Second))
		for range 4 {
			b.Do(t.Context(), fail)
		}
		time.Sleep(10 * time.Second)
		b.Do(t.Context(), fail)
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("4 failures, 10s, 1 failure: state %v, want closed (the run is bounded by the window)", got)
		}
		for range 4 {
			b.Do(t.Context(), fail)
		}
		if got := b.State(); got != breaker.Open {
			t.Fatalf("5 failures within the window: state %v, want open", got)
		}
	})
}

// With WithWaitForProbe, callers turned away by the open breaker come back
// after the next probe, each at its own moment.
func TestWaitForProbeSpreadsCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const open = 4 * time.Second
		b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(open), breaker.WithWaitForProbe())
		b.Do(t.Context(), func(context.Context) error { return errors.New("down") })
		opened := time.Now()
		p := resilience.Chain(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, 10*time.Second)), b)
		var (
			mu    sync.Mutex
			woken []time.Duration
			wg    sync.WaitGroup
		)
		for range 16 {
			wg.Go(func() {
				err := p.Do(t.Context(), func(context.Context) error {
					mu.Lock()
					woken = append(woken, time.Since(opened))
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Errorf("caller: %v", err)
				}
			})
		}
		wg.Wait()
		slices.Sort(woken)
		if len(woken) != 16 {
			t.Fatalf("%d callers ran, want 16", len(woken))
		}
		lo, hi := open, open+open/4+time.Millisecond
		if woken[0] <= lo || woken[15] > hi {
			t.Fatalf("callers ran from %v to %v, want within (%v, %v]", woken[0], woken[15], lo, hi)
		}
		if spread := woken[15] - woken[0]; spread < open/16 {
			t.Fatalf("callers ran within %v of each other (%v), want them spread over up to %v", spread, woken, open/4)
		}
		distinct := len(slices.Compact(slices.Clone(woken)))
		if distinct < 12 {
			t.Fatalf("callers woke at %d distinct moments (%v), want them apart", distinct, woken)
		}
	})
}

// A call slower than the threshold counts as slow; the share of slow
// calls opens the breaker, and slow successes are not failures.
func TestSlowCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.WithSlowCalls(100*time.Millisecond, 0.6), breaker.WithFailureRatio(0.5, 10),
			breaker.WithOpenDuration(time.Second))
		call := func(d time.Duration, err error) {
			b.Do(t.Context(), func(context.Context) error { time.Sleep(d); return err })
		}
		for range 5 {
			call(200*time.Millisecond, nil)
			call(time.Millisecond, nil)
		}
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("5 slow of 10, no failure: state %v, want closed", got)
		}
		call(200*time.Millisecond, nil)
		call(200*time.Millisecond, nil) // 7 of 12
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("7 slow of 12: state %v, want closed", got)
		}
		call(200*time.Millisecond, nil) // 8 of 13
		if got := b.State(); got != breaker.Open {
			t.Fatalf("8 slow of 13: state %v, want open", got)
		}
		// A slow probe opens the breaker again; a fast one closes it.
		time.Sleep(time.Second + time.Millisecond)
		call(200*time.Millisecond, nil)
		if got := b.State(); got != breaker.Open {
			t.Fatalf("after a slow probe: state %v, want open", got)
		}
		time.Sleep(time.Second + time.Millisecond)
		call(time.Millisecond, nil)
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("after a fast probe: state %v, want closed", got)
		}
	})
}

// The outcome of a call that began before a change of state is not
// counted after it; a probe the caller canceled frees its place.
func TestStaleOutcomesAndCanceledProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Second))
		release := make(chan error)
		done := make(chan struct{})
		go func() {
			b.Do(t.Context(), func(context.Context) error { return <-release })
			close(done)
		}()
		synctest.Wait()
		b.Do(t.Context(), func(context.Context) error { return errors.New("down") })
		time.Sleep(time.Second + time.Millisecond)
		if got := b.State(); got != breaker.HalfOpen {
			t.Fatalf("state %v, want half-open", got)
		}
		release <- errors.New("late failure") // began while closed
		<-done
		if got := b.State(); got != breaker.HalfOpen {
			t.Fatalf("a stale failure changed the state to %v", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		b.Do(ctx, func(context.Context) error { cancel(); return ctx.Err() })
		if err := b.Do(t.Context(), func(context.Context) error { return nil }); err != nil {
			t.Fatalf("after a canceled probe: %v, want the next call to be the probe", err)
		}
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("state %v, want closed", got)
		}
	})
}

// Through resiliencehttp.Standard, an open breaker fails the call at once:
// the retry does not wait for the next probe, and the error matches
// ErrOpen.
func TestStandardHTTPOpenBreakerFailsFast(t *testing.T) {
	srv := newServer(t, http.StatusServiceUnavailable)
	const open = 10 * time.Second
	tr, err := resiliencehttp.Standard(nil, standard.WithBreaker(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(open)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	c := &http.Client{Transport: tr}
	for i := range 2 {
		began := time.Now()
		_, err := get(c, srv.URL)
		took := time.Since(began)
		if !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("call %d: got %v, want ErrOpen", i+1, err)
		}
		if took >= open/2 {
			t.Fatalf("call %d took %v: it waited for the probe, due %v after the opening", i+1, took, open)
		}
	}
	if got := srv.seen.Load(); got != 1 {
		t.Fatalf("server saw %d requests, want 1: the first attempt opened the breaker", got)
	}
}
