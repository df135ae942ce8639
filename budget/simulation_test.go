package budget_test

import (
	"math/rand/v2"
	"testing"

	"github.com/resilience-go/resilience/budget"
)

// The designs a retry budget could take, driven by a naive retry loop (4
// attempts at most) over seeded outcomes. Only the first is the package's;
// the others are reference models of the anchors, kept here to record why
// they were not chosen.
type quota interface {
	call()                  // a call begins
	allow() bool            // may a retry be sent?
	outcome(ok, retry bool) // an attempt ended; retry: it was not the first
}

// ours is the package's Budget.
type ours struct{ b *budget.Budget }

func (q ours) call()       {}
func (q ours) allow() bool { return q.b.TryWithdraw() }
func (q ours) outcome(ok, retry bool) {
	if ok {
		q.b.Deposit()
		if retry {
			q.b.Refund()
		}
	}
}

// percentage lets retries add at most ratio of the calls, with a bounded
// reserve: each call deposits ratio, each retry costs 1 (Finagle's and
// Envoy's budgets, without their time window).
type percentage struct{ level, ratio, max float64 }

func (q *percentage) call() { q.level = min(q.level+q.ratio, q.max) }
func (q *percentage) allow() bool {
	if q.level >= 1 {
		q.level--
		return true
	}
	return false
}
func (q *percentage) outcome(bool, bool) {}

// throttle is gRPC's retry throttling: a failed attempt costs 1, a success
// earns ratio, and retries stop while the level is at or below half.
type throttle struct{ level, ratio, max float64 }

func (q *throttle) call()       {}
func (q *throttle) allow() bool { return q.level > q.max/2 }
func (q *throttle) outcome(ok, _ bool) {
	if ok {
		q.level = min(q.level+q.ratio, q.max)
	} else {
		q.level = max(q.level-1, 0)
	}
}

type simResult struct {
	calls, attempts, succeeded  int
	steadyCalls, steadyAttempts int // over the second half of the calls
}

func (r simResult) perCall() float64       { return float64(r.attempts) / float64(r.calls) }
func (r simResult) steadyPerCall() float64 { return float64(r.steadyAttempts) / float64(r.steadyCalls) }
func (r simResult) success() float64       { return float64(r.succeeded) / float64(r.calls) }

// simulate runs calls through a naive loop of at most 4 attempts, each
// failing with probability failure, under q (nil: no budget).
func simulate(q quota, calls int, failure float64, seed uint64) simResult {
	rng := rand.New(rand.NewPCG(seed, seed))
	var r simResult
	for i := range calls {
		if q != nil {
			q.call()
		}
		n := 0
		ok := false
		for attempt := 1; attempt <= 4; attempt++ {
			if attempt > 1 && q != nil && !q.allow() {
				break
			}
			n++
			ok = rng.Float64() >= failure
			if q != nil {
				q.outcome(ok, attempt > 1)
			}
			if ok {
				break
			}
		}
		r.calls++
		r.attempts += n
		if ok {
			r.succeeded++
		}
		if i >= calls/2 {
			r.steadyCalls++
			r.steadyAttempts += n
		}
	}
	return r
}

// TestSimulatedOutageAndBrownout is the deterministic proof of the two
// targets: during a total outage at most 1.2 attempts per call, in a 30%
// brownout at least 99% success. The real measurement is the scenario
// suite's (docs/benchmarks.md).
func TestSimulatedOutageAndBrownout(t *testing.T) {
	const calls = 10000
	designs := []struct {
		name string
		q    func() quota
		pass bool // meets both targets
	}{
		{"refunding quota (this package)", func() quota { return ours{budget.New()} }, true},
		{"percentage 20%", func() quota { return &percentage{level: 10, ratio: 0.2, max: 10} }, false},
		{"gRPC throttling 10/0.1", func() quota { return &throttle{level: 10, ratio: 0.1, max: 10} }, false},
		{"no budget", func() quota { return nil }, false},
	}
	for _, d := range designs {
		out := simulate(d.q(), calls, 1, 1)
		brown := simulate(d.q(), calls, 0.3, 2)
		t.Logf("%-32s outage: %.3f attempts/call (%.3f in the second half); brownout 30%%: %.2f%% success, %.3f attempts/call",
			d.name, out.perCall(), out.steadyPerCall(), 100*brown.success(), brown.perCall())
		meets := out.perCall() <= 1.2 && brown.success() >= 0.99
		if meets != d.pass {
			t.Errorf("%s: meets both targets: %v, want %v", d.name, meets, d.pass)
		}
	}

	// The package's budget, in detail.
	out := simulate(ours{budget.New()}, calls, 1, 1)
	if want := calls + budget.DefaultCapacity/budget.DefaultCost; out.attempts != want {
		t.Errorf("outage: %d attempts, want one per call plus the %d retries the full budget paid for", out.attempts, want-calls)
	}
	if out.steadyPerCall() != 1 {
		t.Errorf("outage, steady state: %.3f attempts per call, want 1", out.steadyPerCall())
	}
	// In the brownout the budget never refuses a retry: the outcome is the
	// same as without one, call for call.
	brown := simulate(ours{budget.New()}, calls, 0.3, 2)
	free := simulate(nil, calls, 0.3, 2)
	if brown != free {
		t.Errorf("brownout: with the budget %+v, without %+v; want the same", brown, free)
	}
	if brown.success() < 0.99 {
		t.Errorf("brownout: %.2f%% success, want at least 99%%", 100*brown.success())
	}
	// A deeper brownout, where half the attempts fail: the budget still
	// bounds the extra load.
	deep := simulate(ours{budget.New()}, calls, 0.8, 3)
	if deep.steadyPerCall() > 1.3 {
		t.Errorf("80%% failures, steady state: %.3f attempts per call, want at most 1.3", deep.steadyPerCall())
	}
	t.Logf("80%% failures: %.3f attempts/call in the second half, %.1f%% success", deep.steadyPerCall(), 100*deep.success())
}
