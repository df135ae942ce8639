package resiliencehttp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
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
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a real loopback HTTP server that answers each request with
// the next status in its script (the last one repeats), and records what
// it saw.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	script   []int
	header   http.Header // sent with every response
	hits     int
	bodies   []string // sha256 of each request body
	conns    atomic.Int32
	respBody string
}

func newServer(t *testing.T, script ...int) *server {
	t.Helper()
	s := &server{script: script, header: http.Header{}, respBody: "ok"}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.hits++
	n := s.hits
	s.bodies = append(s.bodies, fmt.Sprintf("%x", sha256.Sum256(b)))
	code := s.script[min(n, len(s.script))-1]
	for k, v := range s.header {
		w.Header()[k] = v
	}
	body := s.respBody
	s.mu.Unlock()
	w.WriteHeader(code)
	fmt.Fprintf(w, "%s attempt %d", body, n)
}

func (s *server) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// fastRetry retries quickly, so that tests on real time do not wait.
func fastRetry(opts ...retry.Option) *retry.Policy {
	return retry.New(append([]retry.Option{retry.WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
}

// closeTracker is a real transport whose responses report their closing.
type closeTracker struct {
	base           http.RoundTripper
	opened, closed atomic.Int32
}

func (c *closeTracker) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		c.opened.Add(1)
		resp.Body = &trackedBody{ReadCloser: resp.Body, closed: &c.closed}
	}
	return resp, err
}

type trackedBody struct {
	io.ReadCloser
	closed *atomic.Int32
	once   sync.Once
}

func (b *trackedBody) Close() error {
	b.once.Do(func() { b.closed.Add(1) })
	return b.ReadCloser.Close()
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

func newTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

func TestTransientFailuresThenSuccess(t *testing.T) {
	for n := range 4 {
		script := append(make([]int, 0, n+1), http.StatusOK)
		for range n {
			script = append([]int{http.StatusServiceUnavailable}, script...)
		}
		s := newServer(t, script...)
		base := newTransport()
		defer base.CloseIdleConnections()
		client := &http.Client{Transport: resiliencehttp.NewTransport(base, fastRetry())}
		resp, err := client.Get(s.URL)
		if err != nil {
			t.Fatalf("%d failures: %v", n, err)
		}
		if got, want := readAll(t, resp), fmt.Sprintf("ok attempt %d", n+1); resp.StatusCode != 200 || got != want {
			t.Fatalf("%d failures: got %d %q, want 200 %q", n, resp.StatusCode, got, want)
		}
		if s.Hits() != n+1 {
			t.Fatalf("%d failures: server saw %d requests, want %d", n, s.Hits(), n+1)
		}
	}
}

func TestExhaustedReturnsLastResponse(t *testing.T) {
	s := newServer(t, http.StatusBadGateway)
	base := newTransport()
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: resiliencehttp.NewTransport(base, fastRetry(retry.WithMaxAttempts(3)))}
	resp, err := client.Get(s.URL)
	if err != nil {
		t.Fatalf("got error %v, want the last response", err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusBadGateway || body != "ok attempt 3" {
		t.Fatalf("got %d %q, want 502 from attempt 3", resp.StatusCode, body)
	}
}

func TestStatusClassification(t *testing.T) {
	tests := []struct {
		code  int
		hits  int
		retry bool
	}{
		{200, 1, false}, {204, 1, false}, {301, 1, false},
		{400, 1, false}, {401, 1, false}, {404, 1, false}, {409, 1, false},
		{408, 2, true}, {429, 2, true}, {500, 2, true}, {502, 2, true}, {503, 2, true}, {504, 2, true},
		{501, 1, false}, {505, 1, false},
	}
	for _, tt := range tests {
		s := newServer(t, tt.code)
		base := newTransport()
		client := &http.Client{
			Transport:     resiliencehttp.NewTransport(base, fastRetry(retry.WithMaxAttempts(2))),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		resp, err := client.Get(s.URL)
		if err != nil {
			t.Fatalf("%d: %v", tt.code, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code || s.Hits() != tt.hits {
			t.Errorf("status %d: got %d after %d requests, want %d requests", tt.code, resp.StatusCode, s.Hits(), tt.hits)
		}
		base.CloseIdleConnections()
	}
}

// kindRecorder is a policy that records how each attempt's error is
// classified, as a breaker would see it.
type kindRecorder struct {
	mu    sync.Mutex
	kinds []resilience.Kind
	after []time.Duration
}

func (k *kindRecorder) Do(ctx context.Context, op func(context.Context) error) error {
	err := op(ctx)
	d, _ := resilience.RetryAfter(err)
	k.mu.Lock()
	k.kinds = append(k.kinds, resilience.Classify(err))
	k.after = append(k.after, d)
	k.mu.Unlock()
	return err
}

func TestOutcomeKinds(t *testing.T) {
	tests := []struct {
		code int
		want resilience.Kind
	}{
		{200, resilience.KindSuccess}, {404, resilience.KindRejected}, {408, resilience.KindTransient},
		{429, resilience.KindThrottled}, {500, resilience.KindTransient}, {501, resilience.KindPermanent},
		{503, resilience.KindTransient}, {599, resilience.KindPermanent},
	}
	for _, tt := range tests {
		s := newServer(t, tt.code)
		var rec kindRecorder
		base := newTransport()
		resp, err := (&http.Client{Transport: resiliencehttp.NewTransport(base, &rec)}).Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		base.CloseIdleConnections()
		if len(rec.kinds) != 1 || rec.kinds[0] != tt.want {
			t.Errorf("status %d classified %v, want %v", tt.code, rec.kinds, tt.want)
		}
	}
}

func TestPostRetriedOnlyWithIdempotencyKey(t *testing.T) {
	payload := strings.Repeat("payload-", 1000)
	tests := []struct {
		name     string
		method   string
		header   string
		getBody  bool
		wantHits int
	}{
		{"POST without key", http.MethodPost, "", true, 1},
		{"PATCH without key", http.MethodPatch, "", true, 1},
		{"POST with key, GetBody", http.MethodPost, "Idempotency-Key", true, 3},
		{"POST with key, no GetBody", http.MethodPost, "Idempotency-Key", false, 3},
		{"POST with X-Idempotency-Key", http.MethodPost, "X-Idempotency-Key", true, 3},
		{"PUT", http.MethodPut, "", false, 3},
		{"DELETE", http.MethodDelete, "", true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, 503, 503, 200)
			base := newTransport()
			defer base.CloseIdleConnections()
			var body io.Reader = strings.NewReader(payload)
			if !tt.getBody {
				body = io.MultiReader(body) // hides the type: no GetBody
			}
			req, _ := http.NewRequest(tt.method, s.URL, body)
			if tt.header != "" {
				req.Header.Set(tt.header, `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
			}
			if (req.GetBody != nil) != tt.getBody {
				t.Fatalf("test setup: GetBody set %v", req.GetBody != nil)
			}
			resp, err := (&http.Client{Transport: resiliencehttp.NewTransport(base, fastRetry())}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if s.Hits() != tt.wantHits {
				t.Fatalf("server saw %d requests, want %d", s.Hits(), tt.wantHits)
			}
			want := fmt.Sprintf("%x", sha256.Sum256([]byte(payload)))
			for i, got := range s.bodies {
				if got != want {
					t.Fatalf("attempt %d sent a different body", i+1)
				}
			}
		})
	}
}

func TestLargeBodyWithoutGetBodyIsSentOnce(t *testing.T) {
	s := newServer(t, 503, 200)
	base := newTransport()
	defer base.CloseIdleConnections()
	payload := strings.Repeat("x", 100)
	rt := resiliencehttp.NewTransport(base, fastRetry())
	rt.MaxBodyBuffer = 64
	req, _ := http.NewRequest(http.MethodPut, s.URL, io.MultiReader(strings.NewReader(payload)))
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || s.Hits() != 1 {
		t.Fatalf("got %d after %d requests, want the 503 after 1", resp.StatusCode, s.Hits())
	}
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte(payload))); s.bodies[0] != want {
		t.Fatal("the server must receive the whole body, buffered prefix and rest")
	}
}

func TestNotReplayableGivesReason(t *testing.T) {
	// A transport error on a body that cannot be replayed stops with a
	// clear reason.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	rt := resiliencehttp.NewTransport(newTransport(), fastRetry())
	rt.MaxBodyBuffer = -1
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr, io.MultiReader(strings.NewReader("data")))
	_, err := rt.RoundTrip(req)
	var re *retry.Error
	if !errors.As(err, &re) || re.Attempts != 1 || !errors.Is(err, resiliencehttp.ErrBodyNotReplayable) {
		t.Fatalf("got %v, want a *retry.Error after 1 attempt giving ErrBodyNotReplayable", err)
	}
}

// TestRetryAfterSchedulesWait checks the wait the policy schedules, in
// fake time, for Retry-After in seconds and as an HTTP-date.
func TestRetryAfterSchedulesWait(t *testing.T) {
	s := newServer(t, http.StatusServiceUnavailable, http.StatusOK)
	tests := []struct {
		name   string
		header func(now time.Time) string
		want   time.Duration
	}{
		{"seconds", func(time.Time) string { return "3" }, 3 * time.Second},
		{"HTTP-date", func(now time.Time) string { return now.Add(7 * time.Second).UTC().Format(http.TimeFormat) }, 7 * time.Second},
		{"past date", func(now time.Time) string { return now.Add(-time.Hour).UTC().Format(http.TimeFormat) }, 0},
		{"capped seconds", func(time.Time) string { return "3600" }, 20 * time.Second},
		{"capped date", func(now time.Time) string { return now.Add(time.Hour).UTC().Format(time.RFC850) }, 20 * time.Second},
		{"malformed", func(time.Time) string { return "soon" }, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s.mu.Lock()
				s.hits = 0
				s.header.Set("Retry-After", tt.header(time.Now()))
				s.mu.Unlock()
				var ev retry.Event
				p := retry.New(
					retry.WithBackoff(100*time.Millisecond, 20*time.Second),
					retry.WithJitter(0),
					retry.WithOnRetry(func(_ context.Context, e retry.Event) { ev = e }),
				)
				base := newTransport()
				base.DisableKeepAlives = true // no idle connection goroutines in the bubble
				start := time.Now()
				resp, err := (&http.Client{Transport: resiliencehttp.NewTransport(base, p)}).Get(s.URL)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if ev.Wait != tt.want || time.Since(start) != tt.want {
					t.Fatalf("scheduled %v, second attempt after %v; want %v", ev.Wait, time.Since(start), tt.want)
				}
				if s.Hits() != 2 {
					t.Fatalf("server saw %d requests, want 2", s.Hits())
				}
			})
		})
	}
}

func TestDiscardedBodiesClosedAndConnectionsReused(t *testing.T) {
	s := newServer(t, 503, 500, 200)
	s.respBody = strings.Repeat("e", 8<<10) // larger than one read, smaller than MaxDrain
	tracker := &closeTracker{base: newTransport()}
	defer tracker.base.(*http.Transport).CloseIdleConnections()
	client := &http.Client{Transport: resiliencehttp.NewTransport(tracker, fastRetry())}
	for i := range 5 {
		s.mu.Lock()
		s.hits = 0
		s.mu.Unlock()
		resp, err := client.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != 200 || !strings.HasSuffix(body, "attempt 3") {
			t.Fatalf("call %d: got %d", i, resp.StatusCode)
		}
	}
	if o, c := tracker.opened.Load(), tracker.closed.Load(); o != 15 || c != 15 {
		t.Fatalf("%d responses, %d closed; want all 15 closed", o, c)
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("server saw %d connections for 15 sequential requests, want 1 (reused)", n)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	s := newServer(t, http.StatusServiceUnavailable)
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p := retry.New(
			retry.WithBackoff(time.Minute, time.Minute),
			retry.WithOnRetry(func(context.Context, retry.Event) { time.AfterFunc(time.Second, cancel) }),
		)
		base := newTransport()
		base.DisableKeepAlives = true
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
		start := time.Now()
		resp, err := resiliencehttp.NewTransport(base, p).RoundTrip(req)
		if resp != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, %v; want context.Canceled and no response", resp, err)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("returned %v after the start, want at the cancellation, 1s in", d)
		}
		if s.Hits() != 1 {
			t.Fatalf("server saw %d requests, want 1", s.Hits())
		}
	})
}

// hangServer hangs on the first `hang` requests until the client goes away,
// then answers 200 with a body.
func hangServer(t *testing.T, hang int) (*httptest.Server, *atomic.Int32, *atomic.Int32) {
	var hits, inFlight atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		if int(hits.Add(1)) <= hang {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(s.Close)
	return s, &hits, &inFlight
}

func TestPerAttemptTimeoutIsRetried(t *testing.T) {
	s, hits, _ := hangServer(t, 2)
	base := newTransport()
	defer base.CloseIdleConnections()
	rt := resiliencehttp.NewTransport(base, fastRetry(), timeout.New(50*time.Millisecond))
	resp, err := (&http.Client{Transport: rt}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "done" || hits.Load() != 3 {
		t.Fatalf("got %q after %d requests, want \"done\" after 3", body, hits.Load())
	}
}

func TestTotalTimeoutStopsEverything(t *testing.T) {
	s, hits, inFlight := hangServer(t, 1000)
	base := newTransport()
	defer base.CloseIdleConnections()
	rt := resiliencehttp.NewTransport(base,
		timeout.New(300*time.Millisecond),
		fastRetry(retry.WithMaxAttempts(1000)),
		timeout.New(20*time.Millisecond))
	_, err := (&http.Client{Transport: rt}).Get(s.URL)
	// Either the total timeout fired, or retry saw that no further attempt
	// fits before it (or, on a loaded machine, that its deadline had passed
	// before its timer fired) and gave up with the last attempt's timeout.
	var te *timeout.Error
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if te.After != 300*time.Millisecond && !errors.Is(err, retry.ErrDeadline) && !errors.Is(err, retry.ErrTooLate) {
		t.Fatalf("got %v, want the total timeout, retry.ErrDeadline or retry.ErrTooLate", err)
	}
	n := hits.Load()
	if n < 2 {
		t.Fatalf("only %d attempts before the total timeout; attempts were not retried", n)
	}
	// Nothing keeps running after the call returned.
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if inFlight.Load() != 0 {
		t.Fatal("requests still in flight after the call returned")
	}
	if hits.Load() != n {
		t.Fatalf("%d attempts started after the call returned", hits.Load()-n)
	}
}

// releaseRecorder is a policy that records when the resources it would hold
// for an attempt are released.
type releaseRecorder struct{ released atomic.Bool }

func (r *releaseRecorder) Do(ctx context.Context, op func(context.Context) error) error {
	err := op(ctx)
	resilience.Defer(ctx, func(error) { r.released.Store(true) })
	return err
}

func TestBodyReadableAfterAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head,")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "tail")
	}))
	defer s.Close()
	base := newTransport()
	defer base.CloseIdleConnections()
	var rec releaseRecorder
	rt := resiliencehttp.NewTransport(base, timeout.New(time.Minute), fastRetry(), &rec, timeout.New(20*time.Millisecond))
	resp, err := rt.RoundTrip(mustGet(t, s.URL))
	if err != nil {
		t.Fatal(err)
	}
	// Well past the attempt timeout: had the timer not been released when
	// the response arrived, the body would now be cut off.
	time.Sleep(200 * time.Millisecond)
	if rec.released.Load() {
		t.Fatal("attempt resources released before the body was done")
	}
	close(release)
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "head,tail" {
		t.Fatalf("read %q, %v; want the whole body", b, err)
	}
	if !rec.released.Load() {
		t.Fatal("attempt resources not released at the end of the body")
	}
	resp.Body.Close()
}

func TestTotalTimeoutBoundsBodyReading(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head,")
		w.(http.Flusher).Flush()
		select { // a body that stalls
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer s.Close()
	base := newTransport()
	defer base.CloseIdleConnections()
	rt := resiliencehttp.NewTransport(base, timeout.New(200*time.Millisecond), fastRetry(), timeout.New(20*time.Millisecond))
	resp, err := rt.RoundTrip(mustGet(t, s.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, context.DeadlineExceeded) || string(b) != "head," {
		t.Fatalf("read %q, %v; want the head, then the total timeout", b, err)
	}
}

func TestCloseReleasesHeldResources(t *testing.T) {
	s := newServer(t, 200)
	s.respBody = strings.Repeat("x", 64<<10)
	base := newTransport()
	defer base.CloseIdleConnections()
	var rec releaseRecorder
	resp, err := resiliencehttp.NewTransport(base, &rec).RoundTrip(mustGet(t, s.URL))
	if err != nil {
		t.Fatal(err)
	}
	if rec.released.Load() {
		t.Fatal("released before the body was closed")
	}
	resp.Body.Close()
	if !rec.released.Load() {
		t.Fatal("not released when the body was closed")
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestTransportErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String()
	ln.Close()
	tlsServer := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer tlsServer.Close()
	tests := []struct {
		name     string
		url      string
		attempts int
		kind     resilience.Kind
	}{
		{"connection refused", refused, 3, resilience.KindTransient},
		{"untrusted certificate", tlsServer.URL, 1, resilience.KindPermanent},
		{"unsupported scheme (the caller's bug)", "ftp://example.com/file", 1, resilience.KindRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts := 0
			count := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
				attempts++
				return op(ctx)
			})
			base := newTransport()
			defer base.CloseIdleConnections()
			_, err := resiliencehttp.NewTransport(base, fastRetry(retry.WithMaxAttempts(3)), count).RoundTrip(mustGet(t, tt.url))
			if err == nil || attempts != tt.attempts || resilience.Classify(err) != tt.kind {
				t.Fatalf("got %v (%v) after %d attempts, want %v after %d", err, resilience.Classify(err), attempts, tt.kind, tt.attempts)
			}
		})
	}
}

// closeCounter is a request body that counts its closing.
type closeCounter struct {
	io.Reader
	closed atomic.Int32
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

func TestInvalidRequestsGetClearErrors(t *testing.T) {
	s := newServer(t, 200)
	tests := []struct {
		name   string
		modify func(*http.Request)
		want   string
	}{
		{"nil URL", func(r *http.Request) { r.URL = nil }, "resiliencehttp: nil Request.URL"},
		{"no host", func(r *http.Request) { r.URL.Host = "" }, "resiliencehttp: no host in request URL"},
		{"bad header name", func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} }, `resiliencehttp: invalid header field name "Bad Name"`},
		{"bad header value", func(r *http.Request) { r.Header.Set("X-Id", "a\r\nInjected: yes") }, `resiliencehttp: invalid header field value for "X-Id"`},
		{"bad method", func(r *http.Request) { r.Method = "GE T" }, `resiliencehttp: invalid method "GE T"`},
	}
	for _, tt := range tests {
		body := &closeCounter{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPut, s.URL, body)
		tt.modify(req)
		_, err := resiliencehttp.NewTransport(nil, fastRetry()).RoundTrip(req)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error starting %q", tt.name, err, tt.want)
		}
		if body.closed.Load() != 1 {
			t.Errorf("%s: request body closed %d times, want 1", tt.name, body.closed.Load())
		}
	}
	if _, err := resiliencehttp.NewTransport(nil).RoundTrip(nil); err == nil {
		t.Error("a nil request must be an error, not a panic")
	}
	if s.Hits() != 0 {
		t.Fatalf("server saw %d invalid requests", s.Hits())
	}
}

func TestRequestBodyClosedWhenNeverSent(t *testing.T) {
	errRejected := errors.New("rejected by policy")
	reject := resilience.PolicyFunc(func(context.Context, func(context.Context) error) error { return errRejected })
	for _, getBody := range []bool{true, false} {
		body := &closeCounter{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:1", body)
		if getBody {
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }
		}
		_, err := resiliencehttp.NewTransport(nil, reject).RoundTrip(req)
		if err != errRejected || body.closed.Load() != 1 {
			t.Fatalf("GetBody %v: got %v and %d closes, want the policy's error and 1 close", getBody, err, body.closed.Load())
		}
	}
}

func TestPolicyThatSwallowsErrorsGetsAnError(t *testing.T) {
	swallow := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		op(ctx)
		return nil
	})
	skip := resilience.PolicyFunc(func(context.Context, func(context.Context) error) error { return nil })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String()
	ln.Close()
	for name, p := range map[string]resilience.Policy{"swallows a failure": swallow, "never runs op": skip} {
		resp, err := resiliencehttp.NewTransport(newTransport(), p).RoundTrip(mustGet(t, refused))
		if resp != nil || err == nil || !strings.Contains(err.Error(), "no attempt produced a response") {
			t.Errorf("a policy that %s: got %v, %v; want no response and a clear error", name, resp, err)
		}
	}
}

func TestRequestIsNotModified(t *testing.T) {
	s := newServer(t, 503, 200)
	base := newTransport()
	defer base.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPut, s.URL, bytes.NewReader([]byte("body")))
	before := fmt.Sprintf("%v %v %v %d", req.Method, req.URL, req.Header, req.ContentLength)
	ctx := req.Context()
	resp, err := resiliencehttp.NewTransport(base, fastRetry()).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if after := fmt.Sprintf("%v %v %v %d", req.Method, req.URL, req.Header, req.ContentLength); after != before || req.Context() != ctx {
		t.Fatalf("request changed: %s -> %s", before, after)
	}
}

func TestCallDescribed(t *testing.T) {
	s := newServer(t, 200)
	var got resilience.Call
	spy := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		got, _ = resilience.CallFrom(ctx)
		return op(ctx)
	})
	base := newTransport()
	defer base.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("x"))
	resp, err := resiliencehttp.NewTransport(base, spy).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := resilience.Call{Target: s.Listener.Addr().String(), Method: "POST", Idempotent: false}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestNoPolicyPassesThrough(t *testing.T) {
	s := newServer(t, 503)
	base := newTransport()
	defer base.CloseIdleConnections()
	resp, err := (&http.Client{Transport: resiliencehttp.NewTransport(base)}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || s.Hits() != 1 {
		t.Fatalf("got %d after %d requests, want one 503", resp.StatusCode, s.Hits())
	}
}
