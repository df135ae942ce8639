package resiliencehttp_test

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

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

// TestStalledDiscardDoesNotHoldRetry: a 503 whose body stalls after a few
// bytes is drained for at most MaxDrainTime; the retry goes on and the
// caller gets the next attempt's answer, well within the total timeout.
func TestStalledDiscardDoesNotHoldRetry(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var hits atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy")
			w.(http.Flusher).Flush()
			select { // the rest of the body never comes
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	defer s.Close()
	base := newTransport()
	defer base.CloseIdleConnections()
	rt := resiliencehttp.NewTransport(base, timeout.New(20*time.Second), fastRetry())
	began := time.Now()
	resp, err := rt.RoundTrip(mustGet(t, s.URL))
	if err != nil {
		t.Fatalf("got %v, want the retry's 200 (the stalled drain held the retry until the total timeout)", err)
	}
	if got := readAll(t, resp); resp.StatusCode != http.StatusOK || got != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, got)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}
	t.Logf("retried after a stalled drain in %v", time.Since(began))
}

// slowBodyServer answers 200 with a body whose second half comes after
// delay, well past the attempt timeouts the tests set.
func slowBodyServer(t *testing.T, delay time.Duration) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "head,")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "tail")
	}))
	t.Cleanup(s.Close)
	return s
}

// TestAttemptTimeoutNeverCutsHeldBody: the per-attempt timeout bounds the
// time to the response, never the body, whether or not a retry started an
// attempt: a POST without an Idempotency-Key (sent once) and a pipeline
// with no retries at all.
func TestAttemptTimeoutNeverCutsHeldBody(t *testing.T) {
	s := slowBodyServer(t, time.Second)
	for _, tt := range []struct {
		name   string
		method string
		opts   []standard.Option
	}{
		{"POST without Idempotency-Key", http.MethodPost, nil},
		{"PATCH without Idempotency-Key", http.MethodPatch, nil},
		{"GET with WithRetries(0)", http.MethodGet, []standard.Option{standard.WithRetries(0)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := newTransport()
			defer base.CloseIdleConnections()
			opts := append([]standard.Option{standard.WithAttemptTimeout(250 * time.Millisecond)}, tt.opts...)
			rt, err := resiliencehttp.Standard(base, opts...)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequestWithContext(context.Background(), tt.method, s.URL, strings.NewReader("payload"))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || string(b) != "head,tail" {
				t.Fatalf("read %q, %v; want the whole body (the attempt timeout cut it)", b, err)
			}
		})
	}
}

// TestUnclosedBodyReleasedWhenCallEnds: a body its caller never closes
// holds a bulkhead slot only until the call's context ends, by the
// caller's cancellation or by the total timeout.
func TestUnclosedBodyReleasedWhenCallEnds(t *testing.T) {
	s := slowBodyServer(t, time.Hour) // a body that never ends
	for _, tt := range []struct {
		name  string
		total time.Duration
		end   func(cancel context.CancelFunc)
	}{
		{"caller cancels", 30 * time.Second, func(cancel context.CancelFunc) { cancel() }},
		{"total timeout", time.Second, func(context.CancelFunc) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := newTransport()
			defer base.CloseIdleConnections()
			rt, err := resiliencehttp.Standard(base, standard.WithTotalTimeout(tt.total),
				standard.WithAttemptTimeout(tt.total/2),
				standard.WithBreaker(),
				standard.WithBulkhead(1, bulkhead.WithMaxWait(10*time.Second)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp // dropped without reading or closing
			tt.end(cancel)
			<-resp.Request.Context().Done() // the call's context ended
			// The next call gets the slot; before, it waited 10s for
			// ErrFull.
			ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel2()
			req2, _ := http.NewRequestWithContext(ctx2, http.MethodGet, s.URL, nil)
			resp2, err := rt.RoundTrip(req2)
			if err != nil {
				t.Fatalf("second call: %v (the unclosed body kept the slot)", err)
			}
			resp2.Body.Close()
		})
	}
}

// TestStandardRateLimitPacesBurst: the README's WithRateLimit(100, 20)
// paces a 50-call burst within the calls' deadline instead of failing 30
// of them. (standard.TestRateLimitPacesOrFailsFast checks, in fake time,
// that ratelimit.WithMaxWait(0) keeps failing fast.)
func TestStandardRateLimitPacesBurst(t *testing.T) {
	s := newServer(t, http.StatusOK)
	base := newTransport()
	defer base.CloseIdleConnections()
	rt, err := resiliencehttp.Standard(base, standard.WithRateLimit(100, 20))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu          sync.Mutex
		wg          sync.WaitGroup
		ok, limited int
	)
	for range 50 {
		wg.Go(func() {
			resp, err := rt.RoundTrip(mustGet(t, s.URL))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				resp.Body.Close()
				ok++
			case errors.Is(err, ratelimit.ErrLimited):
				limited++
			default:
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 50 {
		t.Errorf("%d of 50 calls succeeded, %d turned away by the rate limit; want all paced through", ok, limited)
	}
}

// A call whose deadline comes before its turn is turned away at once, not
// held past its deadline.
func TestStandardRateLimitNeverWaitsPastDeadline(t *testing.T) {
	s := newServer(t, http.StatusOK)
	base := newTransport()
	defer base.CloseIdleConnections()
	rt, err := resiliencehttp.Standard(base, standard.WithRateLimit(rate1PerHour, 1))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(mustGet(t, s.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	began := time.Now()
	if _, err := rt.RoundTrip(req); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("got %v, want ErrLimited at once", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("turned away after %v, want at once", d)
	}
}

const rate1PerHour = 1.0 / 3600

// TestCallerBugsAreNotOutages: requests net/http refuses to send as built
// fail with a clear error, are never retried and never open a breaker.
func TestCallerBugsAreNotOutages(t *testing.T) {
	s := newServer(t, http.StatusOK)
	base := newTransport()
	defer base.CloseIdleConnections()
	var retries atomic.Int32
	rt, err := resiliencehttp.Standard(base, standard.WithRetry(
		retry.WithBackoff(time.Millisecond, time.Millisecond),
		retry.WithOnRetry(func(context.Context, retry.Event) { retries.Add(1) })))
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]func() *http.Request{
		"nil Header": func() *http.Request {
			r := mustGet(t, s.URL)
			r.Header = nil
			return r
		},
		"ContentLength above a replayable body": func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, s.URL, strings.NewReader("abc"))
			r.ContentLength = 10 // GetBody is set: the body is not buffered
			return r
		},
		"ContentLength above a buffered body": func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, s.URL, io.MultiReader(strings.NewReader("abc")))
			r.ContentLength = 10
			return r
		},
		"ContentLength with no body": func() *http.Request {
			r := mustGet(t, s.URL)
			r.ContentLength = 10
			return r
		},
		"invalid header value": func() *http.Request {
			r := mustGet(t, s.URL)
			r.Header.Set("X-Bad", "a\nb")
			return r
		},
	}
	for range 10 { // 50 bad calls: far more than the breaker needs to open
		for name, req := range bad {
			resp, err := rt.RoundTrip(req())
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s: got %s, want an error", name, resp.Status)
			}
			if k := resilience.Classify(err); k != resilience.KindRejected && !strings.HasPrefix(err.Error(), "resiliencehttp: ") {
				t.Fatalf("%s: got %v (%v), want a clear error, rejected", name, err, k)
			}
		}
	}
	if n := retries.Load(); n != 0 {
		t.Errorf("%d retries of caller bugs, want none", n)
	}
	resp, err := rt.RoundTrip(mustGet(t, s.URL))
	if errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("a good call after the bad ones: %v; caller bugs opened the breaker", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestPolicyErrorSaysWhyNotRetried: a POST too large to replay that got a
// 503 comes back as the 503, and PolicyError says why it was not retried.
func TestPolicyErrorSaysWhyNotRetried(t *testing.T) {
	s := newServer(t, http.StatusServiceUnavailable, http.StatusOK)
	base := newTransport()
	defer base.CloseIdleConnections()
	rt, err := resiliencehttp.Standard(base)
	if err != nil {
		t.Fatal(err)
	}
	rt.MaxBodyBuffer = 64
	req, _ := http.NewRequest(http.MethodPost, s.URL, io.MultiReader(strings.NewReader(strings.Repeat("x", 100))))
	req.Header.Set("Idempotency-Key", `"k1"`)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || s.Hits() != 1 {
		t.Fatalf("got %d after %d requests, want the 503 after 1", resp.StatusCode, s.Hits())
	}
	perr := resiliencehttp.PolicyError(resp)
	var re *retry.Error
	if !errors.Is(perr, resiliencehttp.ErrBodyNotReplayable) || !errors.As(perr, &re) || re.Attempts != 1 {
		t.Fatalf("PolicyError = %v, want a *retry.Error after 1 attempt matching ErrBodyNotReplayable", perr)
	}

	// A response the policy accepted has none.
	ok, err := (&http.Client{Transport: rt}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	ok.Body.Close()
	if perr := resiliencehttp.PolicyError(ok); ok.StatusCode != http.StatusOK || perr != nil {
		t.Fatalf("got %d with PolicyError %v, want 200 with none", ok.StatusCode, perr)
	}
}

func TestStandardNilOptionNamed(t *testing.T) {
	rt, err := resiliencehttp.Standard(nil, nil)
	if rt != nil || err == nil || err.Error() != "standard: New: option 0 is nil" {
		t.Fatalf("got %v, %v; want an error naming the nil option", rt, err)
	}
}
