package pushback

import (
	"context"
	"errors"
	"fmt"
	bits32 "math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/keyed"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// ErrClosed is matched, with errors.Is, by the error of every call a gate
// turns away. The error is a [*ClosedError].
var ErrClosed = errors.New("pushback: gate closed")

// ClosedError is the error of a call turned away by a [Gate]: its deadline
// ends before the gate reopens (less than the minimum attempt time after
// it). It matches [ErrClosed]. The error Do returns is marked throttled
// and carries the time left until Until (resilience.RetryAfter), so that a
// retry policy outside the gate waits only if the caller's deadline allows,
// which, the gate having turned the call away for that reason, it does not.
type ClosedError struct {
	// Key is the gate's key for the call: its target host by default.
	Key string
	// Until is when the gate reopens, as far as it knows: the end of the
	// dependency's pushback, or, while a probe is out after it, when the
	// others stop waiting for the probe's answer.
	Until time.Time
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("pushback: gate closed for %q until %s", e.Key, e.Until.UTC().Format(time.RFC3339Nano))
}

// Is reports whether target is ErrClosed.
func (e *ClosedError) Is(target error) bool { return target == ErrClosed }

// Gate is a [resilience.Policy] that holds the calls to a dependency while
// that dependency has asked for a pause. Build it with [New]; it is safe
// for concurrent use and meant to be shared by every call, since what the
// calls learn (429s or 503s with Retry-After on most of them, a RateLimit
// field with the client's quota spent) is what the gate passes on to the
// others. The zero Gate is not usable.
//
// The gate keeps one state per key, the call's target host by default, in
// a bounded registry: at most [WithMaxKeys] keys (plus those with calls in
// flight), and a key idle for [WithIdleTimeout] is forgotten. A forgotten
// key starts again open.
type Gate struct {
	c     config
	reg   *keyed.Registry[*host]
	tel   *telemetry.Policy
	waits telemetry.WaitRecorder
}

// New returns a gate configured by opts. It panics, naming the option, if
// an option's value is invalid.
//
// The gate's decisions (closed, held, rejected, reopened) are counted in
// resilience.events and added as events to the span in the call's
// context; the time calls waited is recorded in
// resilience.pushback.wait.duration (see docs/telemetry.md).
func New(opts ...Option) *Gate {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	c.validate()
	g := &Gate{c: c, tel: telemetry.New(telemetry.KindPushback, c.tel)}
	g.waits = g.tel.Waits(telemetry.PushbackWaitName,
		"Time calls waited at a closed pushback gate before going through.")
	g.reg = keyed.New(c.maxKeys, max(c.idle, c.maxPushback), func(key string) *host {
		return &host{g: g, key: key}
	})
	return g
}

// Do runs op for the call in ctx once the gate for the call's key is open.
//
// While the dependency's pushback lasts, a call whose deadline ends at
// least the minimum attempt time after the pushback waits; any other call
// is turned away at once with a [*ClosedError]. When the pushback ends, one
// call goes first as a probe and the others wait for its answer (at most
// the probe timeout, and never past their own deadline less the minimum
// attempt time): if the dependency pushes back again the gate stays
// closed, otherwise it opens for all. A wait ends at once when ctx is
// done; Do then returns ctx.Err().
//
// The gate closes, for the dependency's requested delay capped at the
// maximum pushback, when op reports a pause (resilience.ReportPushback,
// from an HTTP RateLimit field with no quota left), whatever its outcome,
// or fails with a retryable error that carries a delay
// (resilience.RetryAfter: Retry-After, grpc-retry-pushback-ms) for the
// whole dependency. A delay marked as one request's
// (resilience.PushbackRequest) closes it only when at least half of the
// key's last 20 answers carried one, or while the gate is closed or
// reopening; a delay marked as the call's alone (resilience.PushbackCall)
// never does. See the package documentation.
func (g *Gate) Do(ctx context.Context, op func(context.Context) error) error {
	return g.reg.Do(ctx, g.c.key(ctx), op, (*host).do)
}

// Until returns when the gate for key reopens, or the zero time if it is
// open (or has not seen key).
func (g *Gate) Until(key string) time.Time {
	h, ok := g.reg.Peek(key)
	if !ok {
		return time.Time{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Now().Before(h.until) {
		return h.until
	}
	return time.Time{}
}

// Len returns the number of keys the gate keeps.
func (g *Gate) Len() int { return g.reg.Len() }

// host is the gate's state for one key.
type host struct {
	g   *Gate
	key string

	mu sync.Mutex // guards the fields below; never held while calling out
	// until is when the dependency's pushback ends; zero while the gate is
	// open. Once it has passed, the gate is reopening: the next call
	// probes, the others wait for its answer.
	until    time.Time
	probing  bool          // a probe is out
	probeEnd time.Time     // when the others stop waiting for it
	wake     chan struct{} // closed on every change, for the calls held; nil when none wait

	// answers is the host's recent answers, read and written without
	// the lock: the low 32 bits hold one bit per answer, newest in bit 0,
	// set for one request's pushback (resilience.PushbackRequest); the
	// high 32 bits count the answers it holds, up to evidenceWindow.
	answers atomic.Uint64
}

// The evidence that one request's pushback (an HTTP 429 or 503 with
// Retry-After, a gRPC pushback trailer) speaks for the host: at
// least half of its last evidenceWindow answers were such pushback. A
// server that limits one tenant or one endpoint pushes back on a few
// calls among many that it answers at once, and holding all of them
// would turn a few throttled calls into a pause for every caller; a server
// that throttles the whole client pushes back on nearly every call, and
// the gate closes within a few of its answers.
const evidenceWindow = 20

// record adds an answer to the host's recent ones and reports how many of
// them, and how many in all, are pushback.
func (h *host) record(pushed bool) (pushes, n int) {
	const mask = 1<<evidenceWindow - 1
	for {
		old := h.answers.Load()
		bits, cnt := uint32(old), uint32(old>>32)
		if !pushed && bits == 0 && cnt == evidenceWindow {
			return 0, evidenceWindow // the common case: nothing changes
		}
		bits <<= 1
		if pushed {
			bits |= 1
		}
		bits &= mask
		cnt = min(cnt+1, evidenceWindow)
		if h.answers.CompareAndSwap(old, uint64(cnt)<<32|uint64(bits)) {
			return bits32.OnesCount32(bits), int(cnt)
		}
	}
}

func (h *host) do(ctx context.Context, op func(context.Context) error) error {
	probe, err := h.admit(ctx)
	if err != nil {
		telemetry.NotSent(ctx)
		return err
	}
	err = op(ctx)
	h.done(ctx, err, probe)
	if err == nil {
		if c, ok := resilience.CallFrom(ctx); ok && c.OutcomeAtEnd {
			// A stream's op returns when it commits; a pause the server
			// sends with its end (grpc-retry-pushback-ms in the
			// trailer) is reported then, and read here as the answer's.
			resilience.Defer(ctx, func(final error) { h.done(ctx, final, false) })
		}
	}
	return err
}

// admit waits until the call may go. probe reports whether it goes as the
// probe of a reopening gate.
func (h *host) admit(ctx context.Context) (probe bool, err error) {
	var (
		held   bool
		spread bool // the call waited, and must still take its place in the release
		start  time.Time
		timer  *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if held && err == nil {
			h.g.waits.Record(ctx, time.Since(start))
		}
	}()
	dl, hasDeadline := ctx.Deadline()
	last := dl.Add(-h.g.c.minAttempt) // the call's last useful moment to go
	for {
		now := time.Now()
		h.mu.Lock()
		var until time.Time // what the call waits for
		switch {
		case h.until.IsZero() && spread:
			h.mu.Unlock()
			// The held calls leave at random over the release spread,
			// not together, then look at the gate again: one of them
			// may have closed it.
			spread = false
			d := rand.N(h.g.c.spread)
			if hasDeadline {
				d = min(d, last.Sub(now))
			}
			if d > 0 {
				if err := h.sleep(ctx, &timer, d); err != nil {
					return false, err
				}
			}
			continue
		case h.until.IsZero():
			h.mu.Unlock()
			return false, nil
		case now.Before(h.until):
			until = h.until
			if hasDeadline && last.Before(until) {
				h.mu.Unlock()
				return false, h.reject(ctx, until, now)
			}
		case !h.probing:
			h.probing, h.probeEnd = true, now.Add(h.g.c.probeTimeout)
			h.mu.Unlock()
			return true, nil
		case now.Before(h.probeEnd):
			until = h.probeEnd
		default:
			// The probe has not answered in time: stop waiting for it.
			h.until, h.probing = time.Time{}, false
			h.broadcast()
			h.mu.Unlock()
			h.g.tel.Event(ctx, telemetry.EventReopened)
			return false, nil
		}
		if h.wake == nil {
			h.wake = make(chan struct{})
		}
		wake := h.wake
		h.mu.Unlock()

		stop, turnAway := until, false
		if hasDeadline && last.Before(stop) {
			// Only while waiting for the probe: the call waits as long
			// as its deadline allows, then gives up.
			stop, turnAway = last, true
			if !stop.After(now) {
				return false, h.reject(ctx, until, now)
			}
		}
		if !held {
			held, start = true, now
			h.held(ctx, until.Sub(now))
		}
		spread = h.g.c.spread > 0
		if timer == nil {
			timer = time.NewTimer(stop.Sub(now))
		} else {
			timer.Reset(stop.Sub(now))
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-wake:
			timer.Stop()
		case <-timer.C:
			if turnAway {
				return false, h.reject(ctx, until, time.Now())
			}
		}
	}
}

// sleep waits d, or until ctx is done.
func (h *host) sleep(ctx context.Context, timer **time.Timer, d time.Duration) error {
	if *timer == nil {
		*timer = time.NewTimer(d)
	} else {
		(*timer).Reset(d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-(*timer).C:
		return nil
	}
}

// done learns from the call's outcome: a pushback that speaks for the host
// closes the gate, and a probe's answer without one opens it.
func (h *host) done(ctx context.Context, err error, probe bool) {
	d, scope, pushed := pushbackOf(ctx, err)
	d = min(d, h.g.c.maxPushback)
	if pushed && scope == resilience.PushbackCall {
		pushed = false // this call's business alone (its retry's)
	}
	weak := false // one request's pushback, not enough to close the gate
	if answered(ctx, err) {
		pushes, n := h.record(pushed && scope == resilience.PushbackRequest)
		// Among answers that were mostly not pushback, the call's own
		// retry honours it and the others go on, unless the gate is
		// closed already (below).
		weak = pushed && scope == resilience.PushbackRequest && 2*pushes < n
	} else if pushed && scope == resilience.PushbackRequest {
		weak = true
	}
	if (!pushed || d <= 0) && !probe {
		return // the common case: an open gate and nothing learned
	}
	now := time.Now()
	h.mu.Lock()
	if probe {
		h.probing = false
	}
	if weak && h.until.IsZero() {
		// The gate is open, and this pushback alone does not close it.
		// While it is closed or reopening, any pushback extends it.
		pushed = false
	}
	switch {
	case pushed && d > 0:
		until := now.Add(d)
		wasClosed := now.Before(h.until) || (probe && !h.until.IsZero())
		if until.After(h.until) {
			h.until = until
		}
		h.broadcast()
		h.mu.Unlock()
		if !wasClosed {
			h.closed(ctx, d)
		}
	case !probe:
		h.mu.Unlock()
	case ctx.Err() != nil || resilience.Classify(err) == resilience.KindCanceled:
		// The probe's caller gave up: no answer. The next call probes.
		h.broadcast()
		h.mu.Unlock()
	case !h.until.IsZero() && !now.Before(h.until):
		h.until = time.Time{}
		h.broadcast()
		h.mu.Unlock()
		h.g.tel.Event(ctx, telemetry.EventReopened)
	default:
		// Another call closed the gate again while the probe was out.
		h.broadcast()
		h.mu.Unlock()
	}
}

// answered reports whether an attempt's outcome is the dependency's
// answer, which counts among the host's recent answers: not the caller
// giving up, nor a local policy refusing the call or turning it away
// without a requested delay (a full bulkhead).
func answered(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch resilience.Classify(err) {
	case resilience.KindCanceled, resilience.KindRefused:
		return false
	case resilience.KindThrottled:
		_, ok := resilience.RetryAfter(err)
		return ok
	}
	return true
}

// broadcast wakes every call held; h.mu must be held.
func (h *host) broadcast() {
	if h.wake != nil {
		close(h.wake)
		h.wake = nil
	}
}

// pushbackOf returns the pause the dependency asked for in the outcome of
// an attempt, and what it concerns: the delay of a retryable failure (a
// throttled or transient answer with Retry-After), with the scope it was
// marked with, or a pause reported by the adapter, which concerns the
// dependency.
func pushbackOf(ctx context.Context, err error) (time.Duration, resilience.PushbackScope, bool) {
	var d time.Duration
	var ok bool
	scope := resilience.PushbackDependency
	if err != nil && resilience.Classify(err).Retryable() {
		d, ok = resilience.RetryAfter(err)
		scope, _ = resilience.RetryAfterScope(err)
	}
	if r, reported := resilience.ReportedPushback(ctx); reported {
		d, ok, scope = max(d, r), true, resilience.PushbackDependency
	}
	return d, scope, ok
}

// reject returns the error of a call turned away, and reports it.
func (h *host) reject(ctx context.Context, until, now time.Time) error {
	in := until.Sub(now)
	h.g.tel.Count(ctx, telemetry.EventRejected)
	if s := h.g.tel.Span(ctx); s != nil {
		h.g.tel.AddEvent(s, telemetry.EventRejected,
			attribute.Float64(string(telemetry.RetryInKey), in.Seconds()))
	}
	return resilience.MarkRetryAfter(&ClosedError{Key: h.key, Until: until}, resilience.KindThrottled, in)
}

// held reports a call that waits, for up to wait.
func (h *host) held(ctx context.Context, wait time.Duration) {
	h.g.tel.Count(ctx, telemetry.EventHeld)
	if s := h.g.tel.Span(ctx); s != nil {
		h.g.tel.AddEvent(s, telemetry.EventHeld,
			attribute.Float64(string(telemetry.RetryInKey), wait.Seconds()))
	}
}

// closed reports that the call's outcome closed the gate for d.
func (h *host) closed(ctx context.Context, d time.Duration) {
	h.g.tel.Count(ctx, telemetry.EventClosed)
	if s := h.g.tel.Span(ctx); s != nil {
		h.g.tel.AddEvent(s, telemetry.EventClosed,
			attribute.Float64(string(telemetry.RetryInKey), d.Seconds()))
	}
}
