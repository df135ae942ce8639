package main

import (
	"testing"
	"time"
)

// TestLoadIsPaced runs the example through the items service's outage
// (its breaker opens and fails calls at once) and checks that the load
// stays at the rate asked for: failing fast must not make callers spin
// (before the load was paced, 8 callers made 131,000 calls in 10s, 130,000
// of them refused by the open breaker, at 100 calls/s asked for).
func TestLoadIsPaced(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the example for 5s")
	}
	const rate, d = 50, 5 * time.Second
	calls, err := run(d, rate, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(rate * d.Seconds()); calls > want+5 || calls < want/2 {
		t.Errorf("%d calls in %v, want about %d (%d/s)", calls, d, want, rate)
	}
}
