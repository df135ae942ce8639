package keyed

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkExistingKey is the lookup a keyed policy makes on every call for
// a key it already holds: Acquire and Release. The target is at most 50ns
// and no allocation.
func BenchmarkExistingKey(b *testing.B) {
	r := New(10_000, time.Minute, func(string) int { return 0 })
	for i := range 1000 {
		r.Release(r.Acquire("host-" + strconv.Itoa(i) + ":443"))
	}
	const key = "host-500:443"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Release(r.Acquire(key))
		}
	})
}

// BenchmarkExistingKeySpread is BenchmarkExistingKey with each goroutine
// on a key of its own, as calls to many hosts are: the lookups share no
// cache line, where calls to one key share its use count.
func BenchmarkExistingKeySpread(b *testing.B) {
	r := New(10_000, time.Minute, func(string) int { return 0 })
	for i := range 1000 {
		r.Release(r.Acquire("host-" + strconv.Itoa(i) + ":443"))
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := "host-" + strconv.Itoa(int(next.Add(1))*97%1000) + ":443"
		for pb.Next() {
			r.Release(r.Acquire(key))
		}
	})
}
