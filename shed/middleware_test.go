package shed_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/shed"
)

// blocking is a handler whose requests wait until the test lets them go;
// entered receives once per request that reached it.
type blocking struct {
	entered chan struct{}
	release chan struct{}
	runs    atomic.Int64
}

func newBlocking() *blocking {
	return &blocking{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.runs.Add(1)
	b.entered <- struct{}{}
	<-b.release
	io.WriteString(w, "done")
}

type problem struct {
	Type, Title, Detail, Reason, Priority string
	Status                                int
}

// get sends a GET with the priority header (none if empty) and returns the
// response, its body read.
func get(t *testing.T, url, priority string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if priority != "" {
		req.Header.Set(shed.PriorityHeader, priority)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// wantShed fails the test unless resp is a shed response for reason.
func wantShed(t *testing.T, resp *http.Response, body string, reason shed.Reason, priority string) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q, want whole seconds, at least 1", ra)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if p.Status != 503 || p.Reason != string(reason) || p.Priority != priority || p.Type != "about:blank" || p.Detail == "" {
		t.Errorf("problem %+v, want status 503, reason %q, priority %q", p, reason, priority)
	}
}

func TestMiddlewareSheds(t *testing.T) {
	b := newBlocking()
	s := shed.New(shed.Fixed(1), shed.WithQueue(0, 0))
	srv := httptest.NewServer(shed.Middleware(s,
		shed.WithHealthCheck(func(r *http.Request) bool { return r.URL.Path == "/healthz" }))(b))
	defer srv.Close()
	var wg sync.WaitGroup
	wg.Go(func() { get(t, srv.URL+"/work", "") })
	<-b.entered

	resp, body := get(t, srv.URL+"/work", "critical")
	wantShed(t, resp, body, shed.ReasonLimit, "critical")
	if resp.Header.Get("Retry-After") != "1" || resp.Close {
		t.Errorf("Retry-After %q, Close %v; want 1, false", resp.Header.Get("Retry-After"), resp.Close)
	}
	resp, body = get(t, srv.URL+"/work", strings.Repeat("x", 10000))
	wantShed(t, resp, body, shed.ReasonLimit, "default")
	if got := b.runs.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1: a shed request never reaches it", got)
	}

	// A health check passes, at the limit.
	wg.Go(func() {
		resp, body := get(t, srv.URL+"/healthz", "sheddable")
		if resp.StatusCode != 200 || body != "done" {
			t.Errorf("health check: %d %q, want 200 done", resp.StatusCode, body)
		}
	})
	<-b.entered
	close(b.release)
	wg.Wait()
}

func TestMiddlewareQueuesByPriority(t *testing.T) {
	var order []string
	var mu sync.Mutex
	gate := make(chan struct{})
	first := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			first <- struct{}{}
			<-gate
			return
		}
		mu.Lock()
		order = append(order, r.Header.Get(shed.PriorityHeader))
		mu.Unlock()
	})
	s := shed.New(shed.Fixed(1), shed.WithQueue(10, time.Minute))
	srv := httptest.NewServer(shed.Middleware(s)(h))
	defer srv.Close()
	var wg sync.WaitGroup
	wg.Go(func() { get(t, srv.URL+"/first", "") })
	<-first
	for i, p := range []string{"sheddable", "default", "critical"} {
		wg.Go(func() { get(t, srv.URL+"/next", p) })
		for _, q := s.InFlight(); q != i+1; _, q = s.InFlight() { // queued before the next one is sent
			time.Sleep(time.Millisecond)
		}
	}
	close(gate)
	wg.Wait()
	if got := strings.Join(order, " "); got != "critical default sheddable" {
		t.Errorf("served in the order %q, want critical default sheddable", got)
	}
}

func TestMiddlewareDrain(t *testing.T) {
	b := newBlocking()
	s := shed.New(shed.Fixed(4))
	srv := httptest.NewServer(shed.Middleware(s)(b))
	defer srv.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		resp, body := get(t, srv.URL, "")
		if resp.StatusCode != 200 || body != "done" {
			t.Errorf("request in flight during the drain: %d %q, want 200 done", resp.StatusCode, body)
		}
	})
	<-b.entered
	drained := make(chan error, 1)
	wg.Go(func() { drained <- s.Drain(context.Background()) })
	for !s.Draining() {
		time.Sleep(time.Millisecond)
	}
	resp, body := get(t, srv.URL, "critical")
	wantShed(t, resp, body, shed.ReasonDraining, "critical")
	if !resp.Close {
		t.Error("a request shed while draining did not get Connection: close")
	}
	close(b.release)
	if err := <-drained; err != nil {
		t.Errorf("Drain = %v", err)
	}
	wg.Wait()
}

// TestMiddlewareTelemetry reads the shedder's metrics and span events
// with the SDK's readers.
func TestMiddlewareTelemetry(t *testing.T) {
	h := telemetrytest.New(t)
	b := newBlocking()
	s := shed.New(shed.Fixed(1), shed.WithQueue(1, time.Minute), shed.WithName("api"),
		shed.WithMeterProvider(h.MeterProvider), shed.WithTracerProvider(h.TracerProvider))
	mw := shed.Middleware(s)(b)
	traced := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := h.TracerProvider.Tracer("test").Start(r.Context(), r.Header.Get("Name"))
		defer span.End()
		mw.ServeHTTP(w, r.WithContext(ctx))
	})
	srv := httptest.NewServer(traced)
	defer srv.Close()
	var wg sync.WaitGroup
	send := func(name, priority string) <-chan int {
		done := make(chan int, 1)
		wg.Go(func() {
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set("Name", name)
			req.Header.Set(shed.PriorityHeader, priority)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				done <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		})
		return done
	}
	waitQueued := func(n int) {
		for _, q := s.InFlight(); q != n; _, q = s.InFlight() {
			time.Sleep(time.Millisecond)
		}
	}
	running := send("running", "default")
	<-b.entered
	pushedOut := send("pushed-out", "sheddable")
	waitQueued(1)
	queued := send("queued", "critical")
	if code := <-pushedOut; code != 503 {
		t.Fatalf("pushed-out: %d, want 503", code)
	}
	waitQueued(1)

	ms := h.Collect(t)
	if got := telemetrytest.Points(t, ms, "resilience.shed.queued", "{request}"); !maps.Equal(got, map[string]int64{"resilience.name=api": 1}) {
		t.Errorf("resilience.shed.queued %v, want 1", got)
	}
	if got := telemetrytest.Points(t, ms, "resilience.shed.in_flight", "{request}"); !maps.Equal(got, map[string]int64{"resilience.name=api": 1}) {
		t.Errorf("resilience.shed.in_flight %v, want 1", got)
	}

	close(b.release)
	if a, b := <-running, <-queued; a != 200 || b != 200 {
		t.Fatalf("running, queued: %d, %d; want 200, 200", a, b)
	}
	wg.Wait()
	ms = h.Collect(t)
	const base = "http.request.method=GET resilience.name=api resilience.policy=shed "
	want := telemetrytest.Want(map[string]int64{
		base + "resilience.event=queued resilience.priority=sheddable":                              1,
		base + "resilience.event=queued resilience.priority=critical":                               1,
		base + "resilience.event=rejected resilience.priority=sheddable resilience.reason=priority": 1,
	})
	if got := telemetrytest.Points(t, ms, "resilience.events", "{event}"); !maps.Equal(got, want) {
		t.Errorf("resilience.events\n got %v\nwant %v", got, want)
	}
	if got := telemetrytest.Counts(t, ms, "resilience.shed.wait.duration", "s"); !maps.Equal(got, map[string]uint64{"http.request.method=GET resilience.name=api": 1}) {
		t.Errorf("resilience.shed.wait.duration counts %v, want one wait", got)
	}
	if got := telemetrytest.Points(t, ms, "resilience.shed.in_flight", "{request}"); !maps.Equal(got, map[string]int64{"resilience.name=api": 0}) {
		t.Errorf("resilience.shed.in_flight %v, want 0", got)
	}
	evs := h.Events(t, "pushed-out")
	if len(evs) != 2 || evs[0] != telemetrytest.Ev("resilience.shed.queued", "resilience.name=api resilience.priority=sheddable") ||
		evs[1] != telemetrytest.Ev("resilience.shed.rejected", "resilience.name=api resilience.priority=sheddable resilience.reason=priority resilience.retry_in=1") {
		t.Errorf("span events of the request pushed out: %v", evs)
	}
	if evs := h.Events(t, "queued"); !slices.Equal(evs, []telemetrytest.Event{telemetrytest.Ev("resilience.shed.queued", "resilience.name=api resilience.priority=critical")}) {
		t.Errorf("span events of the queued request: %v", evs)
	}
	runtime.KeepAlive(s)
}

// TestShedReleasesIdempotencyKey stacks the middleware the wrong way
// round, idempotency outside shedding: a shed 503 must release the key,
// so that the client's retry runs the request instead of getting the 503
// replayed. (The right order, shedding outside, never reaches the record.)
func TestShedReleasesIdempotencyKey(t *testing.T) {
	for _, order := range []string{"idempotency outside", "shed outside"} {
		t.Run(order, func(t *testing.T) {
			var runs atomic.Int64
			charge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				io.WriteString(w, "charged")
			})
			s := shed.New(shed.Fixed(1), shed.WithQueue(0, 0))
			store := idempotency.NewMemoryStore()
			var h http.Handler
			if order == "idempotency outside" {
				h = idempotency.Middleware(store)(shed.Middleware(s)(charge))
			} else {
				h = shed.Middleware(s)(idempotency.Middleware(store)(charge))
			}
			post := func() *httptest.ResponseRecorder {
				r := httptest.NewRequest("POST", "/charges", strings.NewReader("{}"))
				r.Header.Set("Idempotency-Key", `"k1"`)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w
			}
			rel, err := s.Acquire(context.Background(), shed.Critical) // the server is full
			if err != nil {
				t.Fatal(err)
			}
			if w := post(); w.Code != 503 || w.Header().Get("Retry-After") == "" {
				t.Fatalf("at the limit: %d %v, want 503 with Retry-After", w.Code, w.Header())
			}
			rel()
			if w := post(); w.Code != 200 || w.Body.String() != "charged" || w.Header().Get("Idempotent-Replayed") != "" {
				t.Fatalf("retry: %d %q %v, want the request run", w.Code, w.Body.String(), w.Header())
			}
			if w := post(); w.Code != 200 || w.Header().Get("Idempotent-Replayed") != "true" {
				t.Fatalf("repeat: %d %v, want the recorded 200 replayed", w.Code, w.Header())
			}
			if got := runs.Load(); got != 1 {
				t.Errorf("charged %d times, want 1", got)
			}
		})
	}
}

func TestMiddlewarePanicReleasesSlot(t *testing.T) {
	s := shed.New(shed.Fixed(1), shed.WithQueue(0, 0))
	h := shed.Middleware(s)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the handler's panic", r)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	if running, _ := s.InFlight(); running != 0 {
		t.Errorf("%d in flight after the panic, want 0", running)
	}
	mustAcquire(t, s, shed.Sheddable)()
}
