package adaptive

import (
	"testing"
	"time"
)

// win describes one window of samples fed to the estimator.
type win struct {
	fastest   time.Duration
	saturated bool
	peak      int // calls in flight at most
}

func TestEstimatorUpdate(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name         string
		initial      int
		windows      []win
		wantLimit    int
		wantBaseline time.Duration
	}{
		{"first window sets the baseline", 20, []win{{10 * ms, true, 0}}, 20, 10 * ms},
		{"latency at the baseline leaves the limit", 20, []win{{10 * ms, true, 0}, {12 * ms, true, 0}}, 20, 10 * ms},
		{"within tolerance is not a queue", 20, []win{{10 * ms, true, 0}, {15 * ms, true, 0}}, 20, 10 * ms},
		// 20·max(1.5·10/40, 0.5) + √20 = 14.47
		{"a queue at the limit cuts it", 20, []win{{10 * ms, true, 0}, {40 * ms, true, 0}}, 14, 10 * ms},
		// 20·(1.5·10/20) + √20 = 19.47
		{"the cut is in proportion", 20, []win{{10 * ms, true, 0}, {20 * ms, true, 0}}, 19, 10 * ms},
		{"a slower dependency with room to spare is not cut", 20, []win{{10 * ms, true, 0}, {40 * ms, false, 20}}, 20, 10*ms + 30*ms/16},
		// 20 − (20 − (5+4))·0.1 = 18.9
		{"an unused limit decays toward demand", 20, []win{{10 * ms, true, 0}, {10 * ms, false, 5}}, 18, 10 * ms},
		{"a used limit does not decay", 20, []win{{10 * ms, true, 0}, {10 * ms, false, 16}}, 20, 10 * ms},
		{"the baseline does not rise while the limit is reached", 20, []win{{10 * ms, true, 0}, {40 * ms, true, 0}, {40 * ms, true, 0}}, 11, 10 * ms},
		{"a faster call lowers the baseline", 20, []win{{10 * ms, true, 0}, {5 * ms, true, 0}}, 20, 5 * ms},
		// 3·0.5 + √3 = 3.2: the headroom keeps a few calls in flight
		{"the cut leaves headroom", 3, []win{{10 * ms, true, 0}, {time.Second, true, 0}, {time.Second, true, 0}}, 3, 10 * ms},
		{"the cut never raises a small limit", 2, []win{{10 * ms, true, 0}, {16 * ms, true, 0}}, 2, 10 * ms},
		// A sub-millisecond dependency: three times the baseline is
		// scheduling jitter, not a queue (the scenario suite's slow tail
		// lost half its calls to such cuts).
		{"jitter of a fast dependency is not a queue", 20, []win{{200 * time.Microsecond, true, 0}, {600 * time.Microsecond, true, 0}, {time.Millisecond, true, 0}}, 20, 200 * time.Microsecond},
		{"a fast dependency's queue is cut", 20, []win{{200 * time.Microsecond, true, 0}, {5 * ms, true, 0}}, 14, 200 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			e := newEstimator(2, 200, tt.initial, now)
			for _, w := range tt.windows {
				if w.saturated {
					e.saturate()
				}
				e.admitted(w.peak)
				now = now.Add(window)
				for range minSamples {
					e.sample(w.fastest, now)
				}
			}
			if got := e.current(); got != tt.wantLimit {
				t.Errorf("limit: got %d, want %d", got, tt.wantLimit)
			}
			if e.baseline != tt.wantBaseline {
				t.Errorf("baseline: got %v, want %v", e.baseline, tt.wantBaseline)
			}
		})
	}
}

func TestEstimatorMinimum(t *testing.T) {
	now := time.Unix(0, 0)
	e := newEstimator(10, 200, 12, now)
	for _, d := range []time.Duration{time.Millisecond, time.Second, time.Second} {
		e.saturate()
		now = now.Add(window)
		for range minSamples {
			e.sample(d, now)
		}
	}
	if got := e.current(); got != 10 {
		t.Errorf("limit: got %d, want the minimum 10", got)
	}
}

func TestEstimatorWindowNeedsTimeAndSamples(t *testing.T) {
	now := time.Unix(0, 0)
	e := newEstimator(2, 200, 20, now)
	for range 100 {
		if e.sample(time.Millisecond, now.Add(window/2)) {
			t.Fatal("a window ended before its duration")
		}
	}
	e = newEstimator(2, 200, 20, now)
	for i := range minSamples - 1 {
		if e.sample(time.Millisecond, now.Add(time.Duration(i+1)*time.Second)) {
			t.Fatalf("a window ended with %d samples, want at least %d", i+1, minSamples)
		}
	}
	if !e.sample(time.Millisecond, now.Add(time.Minute)) {
		t.Fatalf("no window ended after %d samples and a minute", minSamples)
	}
}

func TestEstimatorGrow(t *testing.T) {
	now := time.Unix(0, 0)
	e := newEstimator(2, 200, 20, now)
	n := 0
	for e.grow() {
		n++
	}
	if n != 180 {
		t.Errorf("before any sample grew by %d, want 180 (up to the maximum)", n)
	}

	e = newEstimator(2, 200, 20, now)
	e.saturate()
	for range minSamples {
		e.sample(10*time.Millisecond, now.Add(window))
	}
	if !e.grow() {
		t.Error("no growth after a healthy window")
	}
	// The last call came back from a queue: no growth until a call
	// does not.
	e.sample(20*time.Millisecond, now.Add(window))
	if e.grow() {
		t.Error("grew after a call slower than 1.5 times the baseline")
	}
	e.sample(12*time.Millisecond, now.Add(window))
	if !e.grow() {
		t.Error("no growth after a call within tolerance")
	}
	// A window that showed a queue stops growth.
	for i := range 2 {
		e.saturate()
		for range minSamples {
			e.sample(100*time.Millisecond, now.Add(time.Duration(2+i)*window))
		}
	}
	e.sample(10*time.Millisecond, now.Add(3*window))
	if e.grow() {
		t.Error("grew after a window that showed a queue")
	}
	// Never past the maximum.
	e = newEstimator(2, 3, 3, now)
	if e.grow() {
		t.Error("grew past the maximum")
	}
}

func TestEstimatorProbesAfterALongCut(t *testing.T) {
	now := time.Unix(0, 0)
	e := newEstimator(2, 200, 20, now)
	feed := func(d time.Duration, saturated bool) {
		if saturated {
			e.saturate()
		}
		now = now.Add(window)
		for range minSamples {
			e.sample(d, now)
		}
	}
	feed(10*time.Millisecond, true)
	for range int(probeAfter / window) {
		if e.probe(now) {
			t.Fatalf("probe after %v, want %v", now.Sub(time.Unix(0, 0)), probeAfter)
		}
		feed(50*time.Millisecond, true)
	}
	feed(50*time.Millisecond, true)
	if !e.probe(now) {
		t.Fatalf("no probe after %v of cuts", probeAfter)
	}
	e.probed(50 * time.Millisecond)
	if e.probe(now) || e.baseline != 50*time.Millisecond {
		t.Errorf("after the probe: probe %v, baseline %v; want false, 50ms", e.probe(now), e.baseline)
	}
	// A window with spare room ends a run of cuts.
	feed(500*time.Millisecond, true)
	feed(500*time.Millisecond, false)
	now = now.Add(time.Hour)
	if e.probe(now) {
		t.Error("probe although the last window was not a cut")
	}
}
