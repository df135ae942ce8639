package main

import (
	"fmt"
	"math"
	"time"
)

// A metric is one column of the tables: a figure computed from one run,
// and how to print it.
type metric struct {
	header string
	value  func(sc scenario, r *result) float64 // NaN: not applicable
	format func(v float64) string
	kind   string // the only kind of scenario it is shown for; "" for every kind
}

// metricsFor returns the columns of sc's table.
func metricsFor(sc scenario) []metric {
	var out []metric
	for _, m := range metrics {
		if m.kind == "" || m.kind == sc.Kind {
			out = append(out, m)
		}
	}
	return out
}

// recoveryMin is the share of calls in a bucket that must succeed for
// the bucket to count as recovered.
const recoveryMin = 0.95

var metrics = []metric{
	{"success", func(_ scenario, r *result) float64 { return successRate(r.calls) }, percent, ""},
	{"success in fault", func(sc scenario, r *result) float64 { return successRate(inFault(sc, r.calls)) }, percent, ""},
	{"upstream arrivals per call in fault", upstreamAmplification, ratio, ""},
	{"attempts sent per call in fault", func(sc scenario, r *result) float64 {
		fc := inFault(sc, r.calls)
		if len(fc) == 0 {
			return math.NaN()
		}
		var n int
		for _, c := range fc {
			n += c.attempts
		}
		return float64(n) / float64(len(fc))
	}, ratio, ""},
	{"p50", func(_ scenario, r *result) float64 { return latencyP(r.calls, 50, false) }, seconds, ""},
	{"p99", func(_ scenario, r *result) float64 { return latencyP(r.calls, 99, false) }, seconds, ""},
	{"max", func(_ scenario, r *result) float64 { return latencyP(r.calls, 100, false) }, seconds, ""},
	{"p99 of failed", func(_ scenario, r *result) float64 { return latencyP(r.calls, 99, true) }, seconds, ""},
	{"p99 of failed, late in fault", func(sc scenario, r *result) float64 { return latencyP(lateInFault(sc, r.calls), 99, true) }, seconds, ""},
	{"recovery", func(sc scenario, r *result) float64 {
		d, ok := recovery(successBuckets(sc, r.calls), bucketWidth, sc.faultEnd(), recoveryMin)
		if !ok {
			return math.Inf(1)
		}
		return d.Seconds()
	}, seconds, ""},
	{"connections", func(_ scenario, r *result) float64 { return float64(r.up.Conns) }, count, ""},
	{"breaker changes", func(_ scenario, r *result) float64 {
		if r.breakerChanges < 0 {
			return math.NaN()
		}
		return float64(r.breakerChanges)
	}, count, ""},
	{"successes/s completed in fault", func(sc scenario, r *result) float64 {
		return float64(len(completedInFault(sc, r.calls))) / sc.Fault.Seconds()
	}, perSecond, faultOverload},
	{"p99 of those", func(sc scenario, r *result) float64 { return latencyP(completedInFault(sc, r.calls), 99, false) }, seconds, faultOverload},
	{"upstream work wasted", func(_ scenario, r *result) float64 {
		if r.up.Served == 0 {
			return math.NaN()
		}
		return float64(r.up.Wasted) / float64(r.up.Served)
	}, percent, faultOverload},
}

// completedInFault returns the successful calls that completed during the
// fault, whenever they were due.
func completedInFault(sc scenario, cs []call) []call {
	var out []call
	for _, c := range cs {
		if end := c.due + c.latency; c.ok && end >= sc.Pre && end < sc.faultEnd() {
			out = append(out, c)
		}
	}
	return out
}

func successRate(cs []call) float64 {
	if len(cs) == 0 {
		return math.NaN()
	}
	var ok int
	for _, c := range cs {
		if c.ok {
			ok++
		}
	}
	return float64(ok) / float64(len(cs))
}

// inFault returns the calls due during the fault.
func inFault(sc scenario, cs []call) []call {
	var out []call
	for _, c := range cs {
		if c.due >= sc.Pre && c.due < sc.faultEnd() {
			out = append(out, c)
		}
	}
	return out
}

// lateInFault returns the calls due in the second half of the fault, when
// a stack that adapts (a breaker, a gate) has had time to.
func lateInFault(sc scenario, cs []call) []call {
	var out []call
	for _, c := range cs {
		if c.due >= sc.Pre+sc.Fault/2 && c.due < sc.faultEnd() {
			out = append(out, c)
		}
	}
	return out
}

// upstreamAmplification is the requests that reached the upstream during
// the fault window, per call due in it.
func upstreamAmplification(sc scenario, r *result) float64 {
	fc := len(inFault(sc, r.calls))
	if fc == 0 {
		return math.NaN()
	}
	return float64(r.up.FaultArrivals) / float64(fc)
}

// latencyP is the p-th percentile of the latency of every call, or of the
// failed calls only (NaN if none failed).
func latencyP(cs []call, p float64, failed bool) float64 {
	var ds []time.Duration
	for _, c := range cs {
		if !failed || !c.ok {
			ds = append(ds, c.latency)
		}
	}
	if len(ds) == 0 {
		return math.NaN()
	}
	return percentile(ds, p).Seconds()
}

// successBuckets groups the calls by when they were due.
func successBuckets(sc scenario, cs []call) []bucket {
	n := int((sc.total() + bucketWidth - 1) / bucketWidth)
	bs := make([]bucket, n)
	for _, c := range cs {
		i := min(int(c.due/bucketWidth), n-1)
		bs[i].calls++
		if c.ok {
			bs[i].ok++
		}
	}
	return bs
}

func percent(v float64) string   { return fmt.Sprintf("%.1f%%", 100*v) }
func ratio(v float64) string     { return fmt.Sprintf("%.2f", v) }
func perSecond(v float64) string { return fmt.Sprintf("%.1f", v) }
func count(v float64) string     { return fmt.Sprintf("%.0f", v) }

func seconds(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "not recovered"
	case v < 1:
		return fmt.Sprintf("%.0fms", v*1000)
	default:
		return fmt.Sprintf("%.2fs", v)
	}
}

// cell prints a summary: the median, and the range when the runs differ.
func cell(s summary, format func(float64) string) string {
	if s.n == 0 {
		return "—"
	}
	out := format(s.median)
	if s.n > 1 {
		out += " (" + format(s.lo) + "–" + format(s.hi) + ")"
	}
	return out
}
