package main

import (
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value such that at least p% of the
// values are at or below it. It returns 0 for no values and does not
// modify ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// bucket is the outcome of the calls scheduled within one time bucket.
type bucket struct {
	calls, ok int
}

// recovery returns how long after the end of the fault success came back
// for good: from faultEnd to the start of the first bucket, among those
// that end after faultEnd, from which every later bucket that holds calls
// has at least the fraction min of its calls succeeding; 0 when that is
// the bucket in which the fault ended. Buckets are width wide, the first
// starting at 0. recovered is false when there is no such bucket (the last
// one itself is below min); a run that never fell below min recovers at 0.
func recovery(bs []bucket, width, faultEnd time.Duration, min float64) (d time.Duration, recovered bool) {
	first := int(faultEnd / width)
	if first >= len(bs) {
		return 0, false
	}
	from := len(bs) // the earliest bucket from which all later ones are good
	for i := len(bs) - 1; i >= first; i-- {
		b := bs[i]
		if b.calls > 0 && float64(b.ok) < min*float64(b.calls) {
			break
		}
		from = i
	}
	if from == len(bs) {
		return 0, false
	}
	return max(time.Duration(from)*width-faultEnd, 0), true
}

// summary is a cell of a table over several runs: the median and the
// range of the runs' values. NaN values (not applicable to a run) are left
// out; n counts the rest.
type summary struct {
	median, lo, hi float64
	n              int
}

// summarize returns the median, minimum and maximum of vs, ignoring NaN.
// With an even number of values the median is the mean of the middle two
// (+Inf if either is +Inf). It does not modify vs.
func summarize(vs []float64) summary {
	s := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return summary{median: math.NaN(), lo: math.NaN(), hi: math.NaN()}
	}
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		a, b := s[n/2-1], s[n/2]
		if math.IsInf(a, 1) || math.IsInf(b, 1) {
			med = math.Inf(1)
		} else {
			med = (a + b) / 2
		}
	}
	return summary{median: med, lo: s[0], hi: s[n-1], n: n}
}

// median returns the median of vs as summarize does, NaN for none.
func median(vs []float64) float64 { return summarize(vs).median }
