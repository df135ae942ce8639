package bulkhead

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/keyed"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// ErrFull is the error of a call turned away because every slot was taken
// and none came free within the maximum wait. Do returns it marked as
// throttled (resilience.KindThrottled), without a requested delay: an
// outer retry waits its own backoff. Match it with errors.Is.
//
// A bulkhead that stays full while its dependency is idle usually means
// response bodies that were never closed: a body holds its slot until it is
// read to the end or closed, or until its call's context ends.
var ErrFull = errors.New("bulkhead: full (every slot taken; unclosed response bodies are a common cause)")

var errFull = resilience.Mark(ErrFull, resilience.KindThrottled)

// Bulkhead is a [resilience.Policy] that bounds how many calls run at once,
// so that a slow dependency cannot take every goroutine, connection or
// file descriptor of the caller. Build it with [New]; it is safe for
// concurrent use. The zero Bulkhead is not usable.
type Bulkhead struct {
	sem     *semaphore.Weighted
	limit   int
	maxWait time.Duration
	release func(error) // b.releaseSlot, made once so that Defer costs no closure

	tel *telemetryState // shared by the bulkheads of a Keyed
	// count says whether inFlight is kept, for resilience.bulkhead.in_flight;
	// set is its attribute set for this bulkhead.
	count    bool
	inFlight atomic.Int64
	set      attribute.Set
}

// New returns a bulkhead that lets at most limit calls run at once. It
// panics if limit < 1 or an option's value is invalid.
func New(limit int, opts ...Option) *Bulkhead {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("bulkhead: New: option %d is nil", i))
		}
		o.apply(&c)
	}
	c.validate("New", limit, false)
	tel := newTelemetry(&c)
	b := newBulkhead(limit, c.maxWait, tel, "")
	observeInFlight(tel, b, func(b *Bulkhead, o metric.Observer, g gauges) {
		set := metric.WithAttributeSet(b.set)
		o.ObserveInt64(g.inFlight, b.inFlight.Load(), set)
		o.ObserveInt64(g.limit, int64(b.limit), set)
	})
	return b
}

func newBulkhead(limit int, maxWait time.Duration, tel *telemetryState, target string) *Bulkhead {
	b := &Bulkhead{sem: semaphore.NewWeighted(int64(limit)), limit: limit, maxWait: maxWait, tel: tel}
	b.release = b.releaseSlot
	if tel.Metrics() {
		b.count = true
		b.set = inFlightSet(tel, target)
	}
	return b
}

// Limit returns the maximum number of concurrent calls.
func (b *Bulkhead) Limit() int { return b.limit }

// Do takes a slot, waiting up to the maximum wait for one, runs op and
// gives the slot back when op's result is done: when op returns, or, for a
// result held past op (see resilience.Hold), when the response body is
// closed or the stream ends. If no slot comes free in time, Do returns
// ErrFull; if ctx is done first, ctx.Err(). If op panics, the slot is given
// back and the panic goes on.
func (b *Bulkhead) Do(ctx context.Context, op func(context.Context) error) error {
	if err := b.acquire(ctx); err != nil {
		telemetry.NotSent(ctx)
		return err
	}
	if b.count {
		b.inFlight.Add(1)
	}
	returned := false
	defer func() {
		if !returned {
			b.releaseSlot(nil)
		}
	}()
	err := op(ctx)
	returned = true
	if resilience.Held(ctx) {
		resilience.Defer(ctx, b.release)
	} else {
		b.releaseSlot(nil)
	}
	return err
}

func (b *Bulkhead) releaseSlot(error) {
	if b.count {
		b.inFlight.Add(-1)
	}
	b.sem.Release(1)
}

// acquire takes a slot. Telemetry for rejections belongs here.
func (b *Bulkhead) acquire(ctx context.Context) error {
	if b.sem.TryAcquire(1) {
		return nil
	}
	if b.maxWait == 0 {
		b.rejected(ctx)
		return errFull
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, b.maxWait)
	err := b.sem.Acquire(wctx, 1)
	cancel()
	if err == nil {
		b.waited(ctx, time.Since(began))
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.rejected(ctx)
	return errFull
}

// Keyed is a [resilience.Policy] that keeps one [Bulkhead] per key, by
// default per target host, so that a slow dependency takes only its own
// slots. Build it with [NewKeyed]; it is safe for concurrent use. The zero
// Keyed is not usable.
//
// Its bulkheads live in a bounded registry: at most [WithMaxKeys] idle keys,
// and a key with no slot taken for [WithIdleTimeout] is forgotten. A key
// with a slot taken is never forgotten.
type Keyed struct {
	key    func(context.Context) string
	reg    *keyed.Registry[*Bulkhead]
	summed bool          // report the sum over keys, not one series per key
	set    attribute.Set // for summed: the set of the sum over keys
}

// NewKeyed returns a keyed bulkhead that lets at most limit calls per key
// run at once. It panics if limit < 1 or an option's value is invalid.
func NewKeyed(limit int, opts ...Option) *Keyed {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("bulkhead: NewKeyed: option %d is nil", i))
		}
		o.apply(&c)
	}
	c.validate("NewKeyed", limit, true)
	tel := newTelemetry(&c)
	k := &Keyed{key: c.key, summed: c.customKey || c.tel.NoServerAddress}
	if k.summed {
		k.set = inFlightSet(tel, "")
		k.reg = keyed.New(c.maxKeys, c.idle, func(string) *Bulkhead { return newBulkhead(limit, c.maxWait, tel, "") })
	} else {
		k.reg = keyed.New(c.maxKeys, c.idle, func(key string) *Bulkhead { return newBulkhead(limit, c.maxWait, tel, key) })
	}
	observeInFlight(tel, k, func(k *Keyed, o metric.Observer, g gauges) { k.observe(o, g) })
	return k
}

// Do runs op under the bulkhead for the call's key; see [Bulkhead.Do].
func (k *Keyed) Do(ctx context.Context, op func(context.Context) error) error {
	return k.reg.Do(ctx, k.key(ctx), op, (*Bulkhead).Do)
}

// Len returns the number of keys that have a bulkhead.
func (k *Keyed) Len() int { return k.reg.Len() }
