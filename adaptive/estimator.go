package adaptive

import (
	"math"
	"time"
)

// Constants of the estimator. They are not options: the scenario suite
// chose them, and a user who needs another trade-off has the limits.
const (
	// window is the shortest span of samples the limit is updated from.
	window = 100 * time.Millisecond
	// minSamples is the fewest samples a window needs; a window with fewer
	// goes on until it has them, so a quiet host updates less often.
	minSamples = 5
	// tolerance is how far the window's fastest call may be above the
	// baseline before the limit shrinks: 1.5 lets jitter and a busier
	// but unqueued dependency pass.
	tolerance = 1.5
	// minQueue is how far above the baseline a latency must also be to
	// show a queue: below it, a dependency answering in a fraction of a
	// millisecond would look queued whenever the client's own scheduling
	// jitters (the scenario suite's slow tail lost half its calls to such
	// cuts).
	minQueue = 2 * time.Millisecond
	// minGradient bounds one update's decrease: the limit at most halves
	// per window.
	minGradient = 0.5
	// idleHeadroom and idleDecay set how a limit above demand decays: toward
	// the peak in flight plus idleHeadroom, a tenth of the way per window.
	idleHeadroom = 4
	idleDecay    = 0.1
	// baselineRise is the fraction of the way the baseline moves up toward
	// a slower window's fastest call, and only in windows where the limit
	// was never reached: a dependency that became slower for good is
	// learnt, in about twenty windows of spare capacity.
	baselineRise = 1.0 / 16
	// probeAfter is how long the limit may stay cut before the baseline is
	// measured again (see estimator.probe).
	probeAfter = 30 * time.Second
)

// estimator computes the concurrency limit of one host from the latencies
// of its calls. It is not safe for concurrent use: the limiter guards it.
//
// The model is Little's law: a dependency that is overloaded queues, so the
// latency of its fastest calls rises with the number in flight. Each window
// of at least [window] and [minSamples] samples yields one update:
//
//   - the window's current latency is its fastest call, not an average or
//     a high percentile: a slow tail (a fifth of the calls taking seconds,
//     the dependency idle) leaves the fastest calls fast, and the limit
//     alone;
//   - the baseline is the fastest call seen, the dependency's unloaded
//     latency; it falls at once, rises only slowly and only in windows
//     where the limit was never reached (so our own queueing can never
//     raise it: the baseline does not drift up during a long incident),
//     and is measured again by a probe after a long cut;
//   - the limit shrinks only when the window's fastest call is more than
//     [tolerance] times the baseline *and* the limit was reached in the
//     window: latency up with calls queued at the limit is overload,
//     latency up with spare room is the dependency's own business;
//   - shrinking multiplies the limit by tolerance·baseline/current (at
//     most halving it) and adds √limit of headroom, so the limit settles
//     where the dependency's queue is short but never empty;
//   - growing needs no window: a call that finds the limit reached raises
//     it by one, as long as neither the last window nor the last call
//     showed a queue (see estimator.grow), so a burst or a slow tail on a
//     dependency that keeps up is never turned away, and the limit grows
//     back as soon as the dependency recovers;
//   - a limit far above demand decays toward the peak in flight plus a
//     few: the calls a limit lets in at the onset of an overload all join
//     the dependency's queue, so an unused limit is not a safe one.
type estimator struct {
	min, max float64
	limit    float64
	baseline time.Duration // 0: no sample yet

	// The current window.
	start     time.Time
	n         int
	fastest   time.Duration
	saturated bool          // the limit was reached: a call was turned away, queued, or took the last slot
	peak      int           // the most calls in flight in the window
	healthy   bool          // the last window's fastest call was within tolerance of the baseline (or none yet)
	latest    time.Duration // the last sample

	// cutSince is when the limit was first cut in the current run of
	// windows that cut or held it down; zero when the last window did not.
	cutSince time.Time
}

func newEstimator(min, max, initial int, now time.Time) estimator {
	e := estimator{min: float64(min), max: float64(max), limit: float64(initial), healthy: true}
	e.restart(now)
	return e
}

// current returns the limit as a number of calls.
func (e *estimator) current() int { return int(e.limit) }

// saturate records that the limit was reached in the current window.
func (e *estimator) saturate() { e.saturated = true }

// restart forgets the current window's samples, after a pause of the
// client that made them meaningless.
func (e *estimator) restart(now time.Time) {
	e.start, e.n, e.fastest, e.saturated, e.peak = now, 0, 0, false, 0
}

// admitted records that a call was let in, leaving inFlight in flight.
func (e *estimator) admitted(inFlight int) { e.peak = max(e.peak, inFlight) }

// grow raises the limit by one for a call that found it reached, and
// reports whether it did: only while neither the last window nor the last
// call showed a queue. Demand that grows while the dependency keeps up (a
// burst of parallel calls, a slow tail filling the slots) is thus carried
// at once. At the onset of an overload the first call to come back from
// the dependency's queue is slow, which stops the growth within one
// service time; the next window cuts the limit back.
func (e *estimator) grow() bool {
	if !e.clear() || e.limit+1 > e.max {
		return false
	}
	e.limit++
	return true
}

// clear reports whether neither the last window nor the last call showed
// a queue.
func (e *estimator) clear() bool {
	return e.healthy && !(e.baseline > 0 && e.queued(e.latest))
}

// sample adds the latency d of a call that ended at now, and reports
// whether it ended a window (the limit may have changed).
func (e *estimator) sample(d time.Duration, now time.Time) bool {
	if d <= 0 {
		d = 1 // a clock too coarse to see the call: still the fastest possible
	}
	if e.n == 0 || d < e.fastest {
		e.fastest = d
	}
	e.latest = d
	e.n++
	if e.n < minSamples || now.Sub(e.start) < window {
		return false
	}
	e.update(now)
	e.restart(now)
	return true
}

// update ends a window.
func (e *estimator) update(now time.Time) {
	cur := e.fastest
	if e.baseline == 0 || cur < e.baseline {
		e.baseline = cur
	} else if !e.saturated {
		e.baseline += time.Duration(float64(cur-e.baseline) * baselineRise)
	}
	limit := e.limit
	slow := e.queued(cur)
	switch {
	case !e.saturated:
		// Demand is below the limit. A limit far above it is not a
		// safe one: at the onset of an overload every call it lets in
		// joins the dependency's queue. It decays toward the window's
		// peak plus a few, by a tenth per window; grow carries a burst
		// beyond that at once, if the dependency keeps up.
		if target := float64(e.peak + idleHeadroom); limit > target {
			limit -= (limit - target) * idleDecay
		}
	case slow:
		g := max(tolerance*float64(e.baseline)/float64(cur), minGradient)
		limit = min(limit*g+math.Sqrt(limit), limit) // queueing never raises the limit
	}
	e.limit = min(max(limit, e.min), e.max)
	e.healthy = !slow

	if e.saturated && slow {
		if e.cutSince.IsZero() {
			e.cutSince = now
		}
	} else {
		e.cutSince = time.Time{}
	}
}

// queued reports whether latency d shows a queue.
func (e *estimator) queued(d time.Duration) bool {
	return float64(d) > tolerance*float64(e.baseline) && d-e.baseline > minQueue
}

// probe reports whether the limit has been held down for [probeAfter]: the
// latency has stayed high however far the limit was cut, which is what a
// dependency that became slower for good looks like, and what a long
// overload looks like too. The limiter then runs one window at the minimum
// limit; [estimator.probed] takes its fastest call as the baseline. During
// an overload, the queue the probe drains is the one the limiter caused,
// so the probe finds the old baseline again; for a dependency that became
// slower, it finds the new one and the limit can grow back.
func (e *estimator) probe(now time.Time) bool {
	return !e.cutSince.IsZero() && now.Sub(e.cutSince) >= probeAfter
}

// probed sets the baseline from a probe's fastest call.
func (e *estimator) probed(fastest time.Duration) {
	e.baseline = fastest
	e.cutSince = time.Time{}
}
