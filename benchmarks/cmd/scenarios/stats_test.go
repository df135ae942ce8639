package main

import (
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(100 - i) // 100ms down to 1ms, unsorted
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", []time.Duration{ms(7)}, 99, ms(7)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"max of 1..100", hundred, 100, ms(100)},
		{"p1 of 1..100", hundred, 1, ms(1)},
		{"p50 of four rounds up the rank", []time.Duration{ms(4), ms(1), ms(3), ms(2)}, 50, ms(2)},
		{"p51 of four", []time.Duration{ms(4), ms(1), ms(3), ms(2)}, 51, ms(3)},
		{"p99 of ten is the largest", []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(8), ms(9), ms(10)}, 99, ms(10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if hundred[0] != ms(100) {
		t.Errorf("percentile reordered its input: first value is %v, want 100ms", hundred[0])
	}
}

func TestRecovery(t *testing.T) {
	good, bad := bucket{calls: 50, ok: 50}, bucket{calls: 50, ok: 10}
	edge := bucket{calls: 100, ok: 95} // exactly 95%: good
	under := bucket{calls: 100, ok: 94}
	w := ms(250)
	tests := []struct {
		name          string
		bs            []bucket
		faultEnd      time.Duration
		want          time.Duration
		wantRecovered bool
	}{
		{"never fell", []bucket{good, good, good, good}, ms(500), 0, true},
		{"bad until the end of the fault", []bucket{good, bad, good, good}, ms(500), 0, true},
		{"one bad bucket after the end", []bucket{bad, bad, bad, good, good}, ms(500), ms(250), true},
		{"a relapse counts: recovery is from the last bad bucket", []bucket{bad, bad, good, bad, good, good}, ms(500), ms(500), true},
		{"the last bucket is bad", []bucket{good, bad, good, bad}, ms(500), 0, false},
		{"exactly 95% is good", []bucket{bad, bad, edge, edge}, ms(500), 0, true},
		{"94% is not", []bucket{bad, bad, under, good}, ms(500), ms(250), true},
		{"empty buckets do not hold it back", []bucket{bad, bad, {}, good}, ms(500), 0, true},
		{"a fault ending inside a bucket, bad", []bucket{bad, bad, bad, good}, ms(600), ms(150), true},
		{"a fault ending inside a bucket, good", []bucket{bad, bad, good, good}, ms(600), 0, true},
		{"fault ends after the last bucket", []bucket{bad, good}, ms(500), 0, false},
		{"before the fault's end does not count", []bucket{bad, bad, good, good}, ms(250), ms(250), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := recovery(tt.bs, w, tt.faultEnd, 0.95)
			if got != tt.want || ok != tt.wantRecovered {
				t.Errorf("got %v, recovered %v; want %v, recovered %v", got, ok, tt.want, tt.wantRecovered)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name        string
		vs          []float64
		med, lo, hi float64
		n           int
	}{
		{"one", []float64{3}, 3, 3, 3, 1},
		{"odd", []float64{5, 1, 3}, 3, 1, 5, 3},
		{"even: mean of the middle two", []float64{4, 1, 3, 2}, 2.5, 1, 4, 4},
		{"NaN left out", []float64{nan, 2, nan, 6, 4}, 4, 2, 6, 3},
		{"not recovered in one run of three", []float64{0.25, inf, 0.5}, 0.5, 0.25, inf, 3},
		{"not recovered in one run of two", []float64{0.25, inf}, inf, 0.25, inf, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.vs...)
			s := summarize(tt.vs)
			if s.median != tt.med || s.lo != tt.lo || s.hi != tt.hi || s.n != tt.n {
				t.Errorf("got median %v, min %v, max %v, n %d; want %v, %v, %v, %d", s.median, s.lo, s.hi, s.n, tt.med, tt.lo, tt.hi, tt.n)
			}
			for i := range in {
				if !(in[i] == tt.vs[i] || math.IsNaN(in[i]) && math.IsNaN(tt.vs[i])) {
					t.Fatalf("summarize reordered its input: %v, was %v", tt.vs, in)
				}
			}
		})
	}
	if s := summarize([]float64{nan}); s.n != 0 || !math.IsNaN(s.median) {
		t.Errorf("all NaN: got n %d, median %v; want 0, NaN", s.n, s.median)
	}
}

func TestCell(t *testing.T) {
	tests := []struct {
		name string
		vs   []float64
		f    func(float64) string
		want string
	}{
		{"one run: no range", []float64{0.778}, percent, "77.8%"},
		{"three runs: median and range", []float64{0.39, 0.466, 0.5}, percent, "46.6% (39.0%–50.0%)"},
		{"seconds and milliseconds", []float64{2.95, 0.4, 3.1}, seconds, "2.95s (400ms–3.10s)"},
		{"not recovered", []float64{math.Inf(1)}, seconds, "not recovered"},
		{"not applicable", []float64{math.NaN(), math.NaN()}, count, "—"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cell(summarize(tt.vs), tt.f); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSuccessBucketsAndInFault(t *testing.T) {
	sc := scenario{Pre: ms(500), Fault: ms(500), Post: ms(500)}
	var cs []call
	for i := range 15 { // one call every 100ms, the ones in the fault failing
		due := ms(100 * i)
		cs = append(cs, call{due: due, ok: due < sc.Pre || due >= sc.faultEnd(), attempts: 1})
	}
	bs := successBuckets(sc, cs)
	want := []bucket{{3, 3}, {2, 2}, {3, 0}, {2, 0}, {3, 3}, {2, 2}}
	if len(bs) != len(want) {
		t.Fatalf("got %d buckets, want %d", len(bs), len(want))
	}
	for i := range want {
		if bs[i] != want[i] {
			t.Errorf("bucket %d: got %+v, want %+v", i, bs[i], want[i])
		}
	}
	if got := len(inFault(sc, cs)); got != 5 {
		t.Errorf("got %d calls in the fault, want 5", got)
	}
	if got := successRate(inFault(sc, cs)); got != 0 {
		t.Errorf("got success %v in the fault, want 0", got)
	}
	r := &result{calls: cs, up: upstreamStats{FaultArrivals: 10}}
	if got := upstreamAmplification(sc, r); got != 2 {
		t.Errorf("got %v upstream arrivals per call in the fault, want 2", got)
	}
}
