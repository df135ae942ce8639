package breaker

import (
	"testing"
	"time"
)

func testMachine(c config) (*machine, *[]State) {
	var changes []State
	return newMachine(&c, func(_, to State) { changes = append(changes, to) }), &changes
}

func TestMachineIgnoresStaleOutcomes(t *testing.T) {
	c := defaultConfig()
	c.mode, c.consecutive = modeConsecutive, 1
	m, _ := testMachine(c)
	now := time.Unix(0, 0)
	old, _, _ := m.allow(now)
	fresh, _, _ := m.allow(now)
	m.done(fresh, failure, now) // opens
	m.done(old, failure, now)   // from the closed generation: ignored
	if m.current(now) != Open || m.sum != (counts{}) {
		t.Fatalf("state %v, counts %+v; want open with nothing counted", m.current(now), m.sum)
	}
	later := now.Add(c.open + time.Nanosecond)
	probe, st, ok := m.allow(later)
	if !ok || st != HalfOpen {
		t.Fatalf("allow after the open duration: %v %v, want a half-open probe", st, ok)
	}
	if _, st, ok := m.allow(later); ok || st != HalfOpen {
		t.Fatal("a second probe went through with probes=1")
	}
	m.done(old, success, later) // stale: must not close the breaker
	if m.current(later) != HalfOpen {
		t.Fatalf("a stale success changed the state to %v", m.current(later))
	}
	m.done(probe, success, later)
	if m.current(later) != Closed {
		t.Fatalf("the probe's success left the breaker %v", m.current(later))
	}
}

func TestMachineWindowRollsOff(t *testing.T) {
	c := defaultConfig() // ratio 0.5 over 30s in 3s slots, 20 calls at least
	m, changes := testMachine(c)
	now := m.since
	for range 15 {
		tk, _, _ := m.allow(now)
		m.done(tk, success, now)
	}
	// A call that began now and ends after its slot left the window is
	// not counted.
	late, _, _ := m.allow(now)
	now = now.Add(31 * time.Second)
	m.done(late, failure, now)
	if m.sum != (counts{}) {
		t.Fatalf("counts %+v after the window passed, want none", m.sum)
	}
	for i := range 19 {
		tk, _, _ := m.allow(now)
		m.done(tk, failure, now)
		if m.current(now) != Closed {
			t.Fatalf("opened after %d failures, before 20 calls were counted", i+1)
		}
	}
	tk, _, _ := m.allow(now)
	m.done(tk, failure, now)
	if m.current(now) != Open || len(*changes) != 1 {
		t.Fatalf("state %v after 20 failures, changes %v; want open", m.current(now), *changes)
	}
}

func TestMachineExcludedProbeFreesItsPlace(t *testing.T) {
	c := defaultConfig()
	c.mode, c.consecutive = modeConsecutive, 1
	m, _ := testMachine(c)
	now := time.Unix(0, 0)
	tk, _, _ := m.allow(now)
	m.done(tk, failure, now)
	now = now.Add(c.open + time.Nanosecond)
	probe, _, _ := m.allow(now)
	m.done(probe, excluded, now) // the caller canceled the probe
	if _, _, ok := m.allow(now); !ok {
		t.Fatal("an excluded probe must free its place for the next")
	}
}
