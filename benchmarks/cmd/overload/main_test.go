package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRecovery(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		calls []call
		want  time.Duration
	}{
		{"all succeed", []call{{start: 0, ok: true}, {start: 150 * ms, ok: true}}, 0},
		{"a failure in the second bucket", []call{{start: 0, ok: true}, {start: 150 * ms, ok: false}, {start: 250 * ms, ok: true}}, 200 * ms},
		{"calls before the fault's end do not count", []call{{start: -50 * ms, ok: false}, {start: 10 * ms, ok: true}}, 0},
		{"failing to the end", []call{{start: 0, ok: true}, {start: 950 * ms, ok: false}}, -1},
	}
	for _, tt := range tests {
		if got := recovery(tt.calls, 0, time.Second); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMeasure(t *testing.T) {
	sc := scenario{"overload", time.Second, 2 * time.Second, 4 * time.Second}
	calls := []call{
		{start: 0, latency: 10 * time.Millisecond, ok: true},                        // before
		{start: 1500 * time.Millisecond, latency: 100 * time.Millisecond, ok: true}, // during
		{start: 2 * time.Second, latency: 300 * time.Millisecond, ok: true},         // during
		{start: 2500 * time.Millisecond, latency: time.Second, ok: true},            // ends after the fault
		{start: 2600 * time.Millisecond, ok: false},
		{start: 3100 * time.Millisecond, latency: 10 * time.Millisecond, ok: true}, // after
	}
	m := measure(sc, calls)
	if m.faultOK != 1 || m.faultP99 != 300*time.Millisecond {
		t.Errorf("fault: %v ok/s, p99 %v; want 1 ok/s (2 in 2s), p99 300ms", m.faultOK, m.faultP99)
	}
	if m.success != 5.0/6 || m.afterFault != 1 {
		t.Errorf("success %v, after the fault %v; want 5/6 and 1", m.success, m.afterFault)
	}
}
