package resiliencehttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// throttleServer answers 429 with Retry-After (or 200 with a RateLimit
// field) while its switch is on, 200 otherwise. It runs outside the test's
// bubble, on real time; the test flips the switch on its fake clock.
type throttleServer struct {
	*httptest.Server
	on        atomic.Bool
	rateLimit bool // on: 200 with RateLimit r=0 instead of 429
	reset     string
	throttled atomic.Int32 // answers that pushed back
	ok        atomic.Int32
}

func newThrottleServer(t *testing.T, reset string, rateLimit bool) *throttleServer {
	t.Helper()
	s := &throttleServer{reset: reset, rateLimit: rateLimit}
	s.on.Store(true)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !s.on.Load():
			s.ok.Add(1)
		case s.rateLimit:
			s.throttled.Add(1)
			w.Header().Set("RateLimit", `"burst";r=0;t=`+s.reset)
		default:
			s.throttled.Add(1)
			w.Header().Set("Retry-After", s.reset)
			w.WriteHeader(http.StatusTooManyRequests)
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *throttleServer) hits() int { return int(s.throttled.Load() + s.ok.Load()) }

// sendLog is a base transport that records, on the test's clock, when each
// request went out.
type sendLog struct {
	base *http.Transport
	mu   sync.Mutex
	sent map[string][]time.Duration // by host
	t0   time.Time
}

func newSendLog() *sendLog {
	base := newTransport()
	base.DisableKeepAlives = true // no idle connection goroutines in the bubble
	return &sendLog{base: base, sent: map[string][]time.Duration{}, t0: time.Now()}
}

func (l *sendLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.sent[r.URL.Host] = append(l.sent[r.URL.Host], time.Since(l.t0))
	l.mu.Unlock()
	return l.base.RoundTrip(r)
}

func (l *sendLog) times(host string) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.sent[host]...)
}

func get(t *testing.T, c *http.Client, url string, timeout time.Duration) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// After a 429 with Retry-After: 2, other calls to that host wait at the
// gate and go out when the pause ends; calls to another host do not wait;
// a caller whose deadline ends first is turned away without a request.
func TestGateHoldsThrottledHostOnly(t *testing.T) {
	throttled := newThrottleServer(t, "2", false)
	other := newThrottleServer(t, "2", false)
	other.on.Store(false)
	synctest.Test(t, func(t *testing.T) {
		log := newSendLog()
		tr, err := resiliencehttp.Standard(log, standard.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: tr}
		if code, err := get(t, c, throttled.URL, 10*time.Second); err != nil || code != 429 {
			t.Fatalf("first call: %d, %v; want the 429", code, err)
		}
		throttled.on.Store(false)

		if code, err := get(t, c, other.URL, time.Second); err != nil || code != 200 {
			t.Fatalf("other host: %d, %v", code, err)
		}
		_, err = get(t, c, throttled.URL, time.Second)
		if !errors.Is(err, pushback.ErrClosed) {
			t.Fatalf("short deadline: got %v, want ErrClosed", err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if code, err := get(t, c, throttled.URL, 10*time.Second); err != nil || code != 200 {
					t.Errorf("held call: %d, %v", code, err)
				}
			})
		}
		wg.Wait()

		// The probe goes at 2s, the others follow it spread over the
		// gate's release spread (100ms).
		sent := log.times(hostOf(throttled.Server))
		if len(sent) != 5 || sent[0] != 0 || sent[1] != 2*time.Second {
			t.Fatalf("throttled host saw requests at %v, want 5: the 429 at 0, the probe at 2s, then 3 more", sent)
		}
		for _, d := range sent[2:] {
			if d < 2*time.Second || d >= 2100*time.Millisecond {
				t.Fatalf("throttled host saw requests at %v, want the held ones within [2s, 2.1s)", sent)
			}
		}
		if o := log.times(hostOf(other.Server)); len(o) != 1 || o[0] != 0 {
			t.Fatalf("other host saw requests at %v, want one at once", o)
		}
	})
}

// A 200 whose RateLimit field says no quota is left for 2s: the client
// sends nothing more to that host until then.
func TestRateLimitFieldPacesTheClient(t *testing.T) {
	s := newThrottleServer(t, "2", true)
	synctest.Test(t, func(t *testing.T) {
		log := newSendLog()
		tr, err := resiliencehttp.Standard(log)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: tr}
		if code, err := get(t, c, s.URL, 10*time.Second); err != nil || code != 200 {
			t.Fatalf("first call: %d, %v", code, err)
		}
		s.on.Store(false)
		if _, err := get(t, c, s.URL, time.Second); !errors.Is(err, pushback.ErrClosed) {
			t.Fatalf("a call that cannot wait 2s: got %v, want ErrClosed", err)
		}
		for range 3 {
			if code, err := get(t, c, s.URL, 10*time.Second); err != nil || code != 200 {
				t.Fatalf("paced call: %d, %v", code, err)
			}
		}
		// Sequential calls: the first after the pause is the probe, at 2s,
		// and the gate is open for the others.
		sent := log.times(hostOf(s.Server))
		want := []time.Duration{0, 2 * time.Second, 2 * time.Second, 2 * time.Second}
		if len(sent) != len(want) {
			t.Fatalf("requests at %v, want %v", sent, want)
		}
		for i := range want {
			if sent[i] != want[i] {
				t.Fatalf("requests at %v, want %v", sent, want)
			}
		}
	})
}

// The throttling scenario: every request answers 429 with Retry-After: 1
// for 2.5s while calls keep arriving. Through the standard pipeline the
// calls wait at the gate and one probe a second finds out whether the host
// is still throttling; without the gate, every call finds out for itself.
func TestThrottlingCallsWaitAtTheGate(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []standard.Option
	}{
		{"with gate", nil},
		{"without gate", []standard.Option{standard.WithoutPushbackGate()}},
	} {
		s := newThrottleServer(t, "1", false)
		var got struct{ ok, throttled, calls int }
		synctest.Test(t, func(t *testing.T) {
			base := newTransport()
			base.DisableKeepAlives = true
			tr, err := resiliencehttp.Standard(base, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Transport: tr}
			time.AfterFunc(2500*time.Millisecond, func() { s.on.Store(false) })
			var wg sync.WaitGroup
			var ok atomic.Int32
			const calls = 30 // one every 100ms for 3s
			for i := range calls {
				wg.Go(func() {
					time.Sleep(time.Duration(i) * 100 * time.Millisecond)
					if code, err := get(t, c, s.URL, 3*time.Second); err == nil && code == 200 {
						ok.Add(1)
					}
				})
			}
			wg.Wait()
			got.ok, got.throttled, got.calls = int(ok.Load()), int(s.throttled.Load()), calls
		})
		t.Logf("%s: %d/%d calls succeeded, %d requests, %d of them throttled", tt.name, got.ok, got.calls, s.hits(), got.throttled)
		switch tt.name {
		case "with gate":
			// 429s at 0s, 1s and 2s (one probe each); the pause ends at
			// 3s, when every held call goes. Only the first call, whose
			// deadline is 3s, cannot wait for it.
			if got.ok != got.calls-1 || got.throttled != 3 || s.hits() != got.ok+3 {
				t.Errorf("%s: %d/%d succeeded with %d requests (%d throttled); want all but the first, with 3 throttled",
					tt.name, got.ok, got.calls, s.hits(), got.throttled)
			}
		default:
			if got.throttled <= 25 {
				t.Errorf("%s: only %d throttled requests; every call arriving during the throttling should meet one", tt.name, got.throttled)
			}
		}
	}
}

// A retry whose wait ends too close to the deadline for another attempt
// returns the retry's error: the last response was drained before the
// wait, so it is not handed to the caller.
func TestTooLateForARetryReturnsAnErrorNotADrainedResponse(t *testing.T) {
	s := newServer(t, http.StatusServiceUnavailable)
	synctest.Test(t, func(t *testing.T) {
		p := retry.New(
			retry.WithBackoff(100*time.Millisecond, 100*time.Millisecond),
			retry.WithJitter(0),
			retry.WithOnRetry(func(context.Context, retry.Event) { time.Sleep(895 * time.Millisecond) }),
		)
		base := newTransport()
		base.DisableKeepAlives = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
		resp, err := resiliencehttp.NewTransport(base, p).RoundTrip(req)
		if resp != nil || !errors.Is(err, retry.ErrTooLate) {
			t.Fatalf("got %v, %v; want no response and retry.ErrTooLate", resp, err)
		}
		if s.Hits() != 1 {
			t.Fatalf("server saw %d requests, want 1", s.Hits())
		}
	})
}

// partialServer answers 429 with Retry-After: 1 to the first request for
// each path listed in throttle (one tenant's or one endpoint's quota), and
// 200 to everything else.
func partialServer(t *testing.T, throttle ...string) *httptest.Server {
	return partialStatusServer(t, http.StatusTooManyRequests, throttle...)
}

// partialStatusServer is partialServer answering code instead of 429.
func partialStatusServer(t *testing.T, code int, throttle ...string) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	left := map[string]int{}
	for _, p := range throttle {
		left[p]++
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := left[r.URL.Path]
		if n > 0 {
			left[r.URL.Path] = n - 1
		}
		mu.Unlock()
		if n > 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(code)
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(s.Close)
	return s
}

// One 429 among answers that were all 200 is about that request's quota,
// not the host's: the throttled call's own retry waits out its Retry-After,
// and the host's other calls go at once. The same for one 503 with
// Retry-After (a server shedding part of its load). (Before, every 429 or
// 503 with Retry-After closed the gate for the host: a call with a
// shorter deadline was turned away.)
func TestOneRequestsPushbackDoesNotHoldTheHost(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(code), func(t *testing.T) { oneRequestsPushback(t, code) })
	}
}

func oneRequestsPushback(t *testing.T, code int) {
	s := partialStatusServer(t, code, "/b")
	synctest.Test(t, func(t *testing.T) {
		log := newSendLog()
		tr, err := resiliencehttp.Standard(log)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: tr}
		for range 20 {
			if code, err := get(t, c, s.URL+"/a", time.Second); err != nil || code != 200 {
				t.Fatalf("warm-up call: %d, %v", code, err)
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if code, err := get(t, c, s.URL+"/b", 10*time.Second); err != nil || code != 200 {
				t.Errorf("throttled call: %d, %v; want the 200 of its retry", code, err)
			}
		})
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		code, err := get(t, c, s.URL+"/a", 500*time.Millisecond)
		took := time.Since(start)
		wg.Wait()
		if err != nil || code != 200 || took != 0 {
			t.Fatalf("another call to the host after the 429: %d, %v after %v; want a 200 at once", code, err, took)
		}
		sent := log.times(hostOf(s))
		if n := len(sent); n != 23 || sent[20] != 0 || sent[22] != time.Second {
			t.Fatalf("requests at %v; want 20 at 0, the 429 at 0, the other call at 100ms and the retry at 1s", sent)
		}
	})
}

// When most of the host's recent answers push back, the host is
// throttling the client: the gate closes, and the host's other calls wait
// for the pause instead of each spending a request to learn of it.
func TestMostAnswersPushedBackCloseTheGate(t *testing.T) {
	paths := make([]string, 10)
	for i := range paths {
		paths[i] = fmt.Sprintf("/t%d", i)
	}
	s := partialServer(t, paths...)
	synctest.Test(t, func(t *testing.T) {
		log := newSendLog()
		tr, err := resiliencehttp.Standard(log, standard.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: tr}
		for range 20 {
			get(t, c, s.URL+"/a", time.Second)
		}
		for i, p := range paths {
			code, err := get(t, c, s.URL+p, time.Second)
			if err != nil || code != 429 {
				t.Fatalf("call %d to %s: %d, %v; want its 429", i, p, code, err)
			}
			_, err = get(t, c, s.URL+"/a", 500*time.Millisecond)
			switch {
			case i < 9 && err != nil:
				t.Fatalf("after %d pushbacks in the last 20 answers the gate turned a call away: %v", 2*i+1, err)
			case i == 9 && !errors.Is(err, pushback.ErrClosed):
				t.Fatalf("after 10 pushbacks in the last 20 answers: got %v, want pushback.ErrClosed", err)
			}
		}
		if n := len(log.times(hostOf(s))); n != 20+10+9 {
			t.Fatalf("the host saw %d requests, want 39", n)
		}
	})
}

// A RateLimit field item with a partition key (pk, as
// draft-ietf-httpapi-ratelimit-headers defines it) covers that partition
// only: its r=0 says nothing about the host's other requests, so the gate
// stays open. An item without pk covers every request to the host, and
// paces them all. (Before, the gate closed on any r=0: tenant B, with its
// whole quota, was turned away without a request.)
func TestPartitionedRateLimitDoesNotHoldTheHost(t *testing.T) {
	var field atomic.Value
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			w.Header().Set("RateLimit", field.Load().(string))
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(s.Close)
	for _, tt := range []struct {
		name, field string
		held        bool
	}{
		{"partition", `"tenant";r=0;t=2;pk=:dGVuYW50LWE=:`, false},
		{"partition and host", `"tenant";r=0;t=2;pk=:dGVuYW50LWE=:, "host";r=5;t=1`, false},
		{"host", `"host";r=0;t=2`, true},
		{"host beside a partition with quota", `"tenant";r=3;t=9;pk=:dGVuYW50LWE=:, "host";r=0;t=2`, true},
	} {
		field.Store(tt.field)
		synctest.Test(t, func(t *testing.T) {
			log := newSendLog()
			tr, err := resiliencehttp.Standard(log)
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Transport: tr}
			if code, err := get(t, c, s.URL+"/a", time.Second); err != nil || code != 200 {
				t.Fatalf("%s: tenant A's call: %d, %v", tt.name, code, err)
			}
			_, err = get(t, c, s.URL+"/b", time.Second)
			switch {
			case tt.held && !errors.Is(err, pushback.ErrClosed):
				t.Fatalf("%s: tenant B's call with 1s left: %v, want pushback.ErrClosed", tt.name, err)
			case !tt.held && err != nil:
				t.Fatalf("%s: tenant B's call: %v, want it sent at once", tt.name, err)
			}
		})
	}
}
