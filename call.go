package resilience

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience/internal/ctxwatch"
)

// Call describes an outbound call to the policies that run it. Adapters put
// it in the context with [WithCall]; keyed policies (a breaker per host) and
// retry safety read it with [CallFrom].
type Call struct {
	// Target names the dependency: an HTTP host ("api.example.com:443") or
	// a gRPC authority. Keyed policies use it as their default key.
	Target string
	// Method is the HTTP method or the gRPC full method name
	// ("/pkg.Service/Method").
	Method string
	// Idempotent reports whether sending the call more than once has the
	// same effect as sending it once. Retry policies never send a call that
	// is not idempotent twice. Outside any call (no [WithCall] in the
	// context) operations are taken to be idempotent.
	Idempotent bool
	// NoRetry, when non-nil, says why this call must not be sent again even
	// though it is idempotent, for example an HTTP request body that cannot
	// be replayed. A retry policy gives up after the first attempt with an
	// error that wraps this reason.
	NoRetry error
	// OutcomeAtEnd reports that the call's outcome is known only when its
	// held result ends ([Hold]), not when the operation returns: a gRPC
	// stream, whose final status comes last. Policies that judge outcomes
	// (a circuit breaker) then wait for the end. When it is false, the
	// outcome is the operation's error: an HTTP response is judged by its
	// status, at its headers, and a body read afterwards does not change
	// it. Adapters set it before running the policies.
	OutcomeAtEnd bool
	// Sequential says that the call's attempts must not overlap, for
	// example a gRPC stream, whose caller sends on one attempt at a time. A
	// hedging policy then starts an attempt only once the previous one
	// failed, as a retry would.
	Sequential bool
	// IdempotencyKey is the key the call carries so that the server can
	// deduplicate it, set by a policy with [WithIdempotencyKey] (the
	// idempotency package's Keyer). Adapters send it: resiliencehttp as the
	// Idempotency-Key header, resiliencegrpc as idempotency-key metadata.
	// Empty when the policies set none; a key the caller put on the request
	// itself is not copied here.
	IdempotencyKey string
}

// WithCall returns a context that describes call c and holds the result of
// its first attempt (see [Hold]). Adapters call it once per call, before
// running their policies.
func WithCall(ctx context.Context, c Call) context.Context {
	cc := &callCtx{attemptCtx: attemptCtx{Context: ctx, n: 1}, val: c}
	cc.call, cc.h = &cc.val, &cc.hs // one allocation for all
	return &cc.attemptCtx
}

// callCtx is the context WithCall returns: the cell for the result of the
// call's first attempt, and the call's description, which the attempts
// point to. It is apart from attemptCtx so that an attempt, made for every
// try, does not carry a description it never uses.
type callCtx struct {
	attemptCtx
	val Call
	hs  heldState // a call's result is held whenever an attempt's is
}

// WithoutCall returns a context with ctx's deadline, cancellation and
// values, but outside any call: [CallFrom] reports no call and no attempt
// or held result is seen through it. Give it to work that runs inside a
// call but is not part of it, above all a server's handler, which makes
// outbound calls of its own: the description of the incoming call (its
// client, its method, not idempotent) must never be taken for theirs.
func WithoutCall(ctx context.Context) context.Context {
	if attemptFrom(ctx) == nil {
		return ctx
	}
	return noCallCtx{ctx}
}

// noCallCtx hides the call and attempt of the context it wraps.
type noCallCtx struct{ context.Context }

func (c noCallCtx) Value(key any) any {
	if key == (ctxKey{}) || key == (callKey{}) {
		return nil
	}
	return c.Context.Value(key)
}

// AfterFunc lets contexts derived from this one follow its cancellation
// without a goroutine.
func (c noCallCtx) AfterFunc(f func()) (stop func() bool) {
	if af, ok := c.Context.(afterFuncer); ok {
		return af.AfterFunc(f)
	}
	return context.AfterFunc(c.Context, f)
}

// ForwardWatch registers r with the context underneath (see
// internal/ctxwatch).
func (c noCallCtx) ForwardWatch(r *ctxwatch.Reg) bool { return ctxwatch.Forward(c.Context, r) }

// CallFrom returns the call described in ctx by [WithCall]. ok is false
// outside any call.
func CallFrom(ctx context.Context) (c Call, ok bool) {
	if p := callFrom(ctx); p != nil {
		return *p, true
	}
	return Call{}, false
}

type callKey struct{}

func callFrom(ctx context.Context) *Call {
	p, _ := ctx.Value(callKey{}).(*Call)
	return p
}

// WithIdempotencyKey returns a context for the rest of the call described in
// ctx in which the call carries key ([Call.IdempotencyKey]) and is
// idempotent: the policies inside it (retry, hedging) may send it more than
// once, and the adapter sends key with every attempt, so that the server
// can run it once. A policy that stamps keys calls it before any policy
// that makes attempts. Outside any call it returns ctx unchanged.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	p := callFrom(ctx)
	if p == nil {
		return ctx
	}
	k := &keyCtx{Context: ctx, call: *p}
	k.call.IdempotencyKey = key
	k.call.Idempotent = true
	return k
}

// keyCtx overrides the call's description for the contexts derived from it.
type keyCtx struct {
	context.Context
	call Call
}

func (k *keyCtx) Value(key any) any {
	if key == (callKey{}) {
		return &k.call
	}
	return k.Context.Value(key)
}

// AfterFunc lets derived contexts follow cancellation without a goroutine,
// as attemptCtx does.
func (k *keyCtx) AfterFunc(f func()) (stop func() bool) {
	if af, ok := k.Context.(afterFuncer); ok {
		return af.AfterFunc(f)
	}
	return context.AfterFunc(k.Context, f)
}

// ForwardWatch registers r with the context underneath.
func (k *keyCtx) ForwardWatch(r *ctxwatch.Reg) bool { return ctxwatch.Forward(k.Context, r) }

// AttemptNumber returns the number of the attempt running in ctx: 1 for the
// first, 2 for the first retry, and so on. It is 1 outside any policy that
// makes attempts.
func AttemptNumber(ctx context.Context) int {
	if a := attemptFrom(ctx); a != nil {
		return int(a.n)
	}
	return 1
}

// InAttempt reports whether ctx belongs to one attempt of a call, started
// by a policy that may make several ([StartAttempt]), rather than to the
// call as a whole. A timeout uses it to tell what it bounds: inside an
// attempt it bounds the time to a result, and a result held past the
// operation (a response body being read) is left to the outer deadline;
// outside any attempt it bounds the whole call, held result included.
func InAttempt(ctx context.Context) bool {
	a := attemptFrom(ctx)
	return a != nil && a.has(flagAttempt)
}

// An Attempt is one run of an operation by a policy that may run it several
// times (retry, hedging). Start it with [StartAttempt]; end it with exactly
// one of [Attempt.Keep], for the attempt whose result the policy returns,
// or [Attempt.Discard], for one it throws away. The zero Attempt does
// nothing.
type Attempt struct{ a *attemptCtx }

// StartAttempt begins attempt n (1-based) of the call in ctx. Run the
// operation with the returned context, so that its result and the resources
// held for it ([Hold], [Defer]) belong to this attempt.
func StartAttempt(ctx context.Context, n int) (context.Context, Attempt) {
	return startAttempt(ctx, n, false)
}

// StartParallelAttempt is [StartAttempt] for an attempt that may run at the
// same time as other attempts of the same call, as a hedging policy's do.
// [Parallel] reports it to the operation, which must then keep the
// attempt's result apart from the others' and publish it only when the
// attempt is kept ([OnKeep]). Attempts started inside a parallel attempt
// are parallel too.
func StartParallelAttempt(ctx context.Context, n int) (context.Context, Attempt) {
	return startAttempt(ctx, n, true)
}

func startAttempt(ctx context.Context, n int, parallel bool) (context.Context, Attempt) {
	parent := attemptFrom(ctx)
	a := &attemptCtx{Context: ctx, n: int32(min(n, math.MaxInt32)), parent: parent}
	bits := uint32(flagAttempt)
	if parent != nil {
		a.call = callFrom(ctx) // the parent's, or one a policy overrode
		parallel = parallel || parent.has(flagParallel)
	}
	if parallel {
		bits |= flagParallel
	}
	a.bits.Store(bits) // stateOpen
	return a, Attempt{a}
}

// Parallel reports whether the attempt running in ctx may run at the same
// time as other attempts of its call ([StartParallelAttempt]). An adapter
// that writes an attempt's result into memory the caller shares (a gRPC
// reply) must then write into memory of the attempt's own and copy it to
// the caller's in a function given to [OnKeep].
func Parallel(ctx context.Context) bool {
	a := attemptFrom(ctx)
	return a != nil && a.has(flagParallel)
}

// OnKeep arranges for publish to run when the result of the attempt in ctx
// becomes the call's: when the attempt, and every parallel attempt
// enclosing it, is kept ([Attempt.Keep]). It runs on the goroutine that
// keeps the outermost parallel attempt, before the policy that kept it
// returns; it never runs for an attempt that is discarded or not kept.
// Outside any parallel attempt ([Parallel] is false) publish runs at once.
func OnKeep(ctx context.Context, publish func()) {
	a := attemptFrom(ctx)
	if a == nil || !a.has(flagParallel) {
		publish()
		return
	}
	a.mu.Lock()
	if a.keeps == nil {
		a.keeps = new([]func())
	}
	*a.keeps = append(*a.keeps, publish)
	a.mu.Unlock()
}

// Keep hands the attempt's result to the enclosing attempt or call: what is
// deferred there is released when this attempt's result is done. Call it on
// the attempt whose result is returned.
func (at Attempt) Keep() {
	a := at.a
	if a == nil {
		return
	}
	if a.bits.Load() == flagAttempt|stateOpen {
		// Nothing held, not parallel (so no OnKeep list): nothing to
		// hand on, and no lock to take.
		return
	}
	a.mu.Lock()
	keeps := a.keeps
	a.keeps = nil
	held := a.state() == stateHeld && a.parent != nil
	if held {
		a.h.next = a.parent
	}
	a.mu.Unlock()
	if keeps != nil {
		a.publish(*keeps)
	}
	if !held {
		return
	}
	// If a finished in between, it already finished the parent and this
	// hold is ignored.
	a.parent.mu.Lock()
	if a.parent.state() == stateOpen {
		a.parent.setState(stateHeld)
		a.parent.held().child = a // discarding the parent discards a
	}
	a.parent.mu.Unlock()
}

// Discard throws away the attempt's result: it calls the discard function
// given to [Hold] (which drains and closes a response body) and then runs
// every release deferred for the attempt. Retry policies call it on a failed
// attempt before waiting for the next one, so that connections are reused
// and slots freed.
func (at Attempt) Discard() {
	a := at.a
	if a == nil {
		return
	}
	a.mu.Lock()
	a.keeps = nil
	if a.state() != stateHeld {
		var late Discarder
		if a.h != nil {
			late, a.h.lateDiscard = a.h.lateDiscard, nil
		}
		a.mu.Unlock()
		if late != nil {
			late.Discard() // abandoned before it was discarded: free it now
		}
		return
	}
	discard, child := a.h.discard, a.h.child
	a.mu.Unlock()
	switch {
	case discard != nil:
		discard.Discard()
	case child != nil:
		Attempt{child}.Discard()
	}
	a.finish(errDiscarded)
}

// errDiscarded is the final error of a result thrown away by a policy; it is
// not a failure of the dependency.
var errDiscarded = Mark(errors.New("resilience: result discarded"), KindCanceled)

// Hold records that the result of the current attempt outlives the
// operation that produced it: a response body still to be read, a stream
// still open. Releases deferred for the attempt ([Defer]) wait until done is
// called. done is safe to call more than once and from any goroutine; only
// the first call counts, and its error (nil for a clean end) is passed to
// every release. discard, which may be nil, is how a policy throws the
// result away ([Attempt.Discard]); it should free the result (drain and
// close a body) and need not call done.
//
// If ctx ends while the result is held (the caller gave up, or a total
// timeout fired), the result is done at once with an error that matches
// [ErrAbandoned] and ctx's cause, and is classified [KindCanceled]: what
// was deferred for it is released (a bulkhead slot, a breaker's probe),
// and its outcome is not counted, even if the caller never closes the
// body. No goroutine waits for this; it costs one registration with ctx
// (context.AfterFunc, or none with the contexts of this module's policies),
// removed when the result is done.
//
// Outside any call or attempt, Hold returns a done that does nothing.
func Hold(ctx context.Context, discard func()) (done func(err error)) {
	a := attemptFrom(ctx)
	if a == nil {
		return func(error) {}
	}
	var d Discarder
	if discard != nil {
		d = discardFunc(discard)
	}
	a.hold(ctx, d)
	return a.finish
}

// A Discarder frees a held result that a policy throws away: see
// [HoldWith].
type Discarder interface {
	Discard()
}

// discardFunc adapts a function to a Discarder.
type discardFunc func()

func (f discardFunc) Discard() { f() }

// HoldWith is [Hold] for a value: d.Discard() runs when and as Hold's
// discard would (d may be nil), and the returned Holding's Done is Hold's
// done. An adapter that holds a pointer it already has (the wrapper of a
// response body) allocates nothing, where Hold's two functions take an
// allocation each.
func HoldWith(ctx context.Context, d Discarder) Holding {
	a := attemptFrom(ctx)
	if a == nil {
		return Holding{}
	}
	a.hold(ctx, d)
	return Holding{a}
}

// A Holding ends a result held with [HoldWith]. The zero Holding, which
// HoldWith returns outside any call or attempt, does nothing.
type Holding struct{ a *attemptCtx }

// Done ends the held result, as Hold's done does: err is nil for a clean
// end. It is safe to call more than once and from any goroutine; only the
// first call counts.
func (h Holding) Done(err error) {
	if h.a != nil {
		h.a.finish(err)
	}
}

// ErrAbandoned is matched, with errors.Is, by the final error of a held
// result whose context ended before the result was done (see [Hold]): the
// caller gave up on it, or a total timeout fired, while a response body
// was unread or unclosed.
var ErrAbandoned = errors.New("resilience: context ended while the result was held")

// abandonedError is the final error of a held result whose context ended.
type abandonedError struct{ cause error }

func (e *abandonedError) Error() string { return ErrAbandoned.Error() + ": " + e.cause.Error() }

func (e *abandonedError) Unwrap() []error { return []error{ErrAbandoned, e.cause} }

// Held reports whether the result of the current attempt is held (see
// [Hold]) and not yet done. Policies call it after the operation returns
// to choose between releasing at once and calling [Defer].
func Held(ctx context.Context) bool {
	a := attemptFrom(ctx)
	if a == nil {
		return false
	}
	return a.state() == stateHeld // a snapshot, as it would be under the lock
}

// Defer arranges for release to run when the result of the current attempt
// is done: at once if nothing holds it, otherwise when the holder calls
// done or the attempt is discarded. release receives the result's final
// error, nil when it ended cleanly or was never held. Releases run in the
// order they were deferred, outside any lock, on the goroutine that ends
// the result.
func Defer(ctx context.Context, release func(err error)) {
	DeferRelease(ctx, releaseFunc(release))
}

// A Releaser holds something for the result of an attempt (a slot, a
// timer, a registry entry) and lets it go when the result is done; see
// [DeferRelease].
type Releaser interface {
	Release(err error)
}

// DeferRelease is [Defer] for a value: r.Release(err) runs when and as
// release(err) would. A policy that defers a pointer it already has (an
// entry, its own context) allocates nothing, where a closure would.
func DeferRelease(ctx context.Context, r Releaser) {
	a := attemptFrom(ctx)
	if a == nil {
		r.Release(nil)
		return
	}
	a.mu.Lock()
	if a.state() == stateHeld {
		h := a.h
		if h.releases == nil {
			h.releases = h.first[:0]
		}
		h.releases = append(h.releases, r)
		a.mu.Unlock()
		return
	}
	var err error
	if a.h != nil {
		err = a.h.err
	}
	a.mu.Unlock()
	r.Release(err)
}

// releaseFunc adapts a function to a Releaser.
type releaseFunc func(error)

func (f releaseFunc) Release(err error) { f(err) }

type ctxKey struct{}

func attemptFrom(ctx context.Context) *attemptCtx {
	a, _ := ctx.Value(ctxKey{}).(*attemptCtx)
	return a
}

const (
	stateOpen = iota // nothing held yet
	stateHeld        // a result outlives the operation
	stateDone        // the result ended; releases ran
)

// attemptCtx is the context of one attempt and the cell for its result.
type attemptCtx struct {
	context.Context
	call   *Call // the call's description, shared by its attempts (in a callCtx)
	parent *attemptCtx
	n      int32 // beside bits, to keep the struct small: an attempt is made for every try

	// bits holds the state (its low byte) and the flags below. The state
	// and flagPushed change only with mu held; they are read without it
	// where a snapshot does (Held, and Keep of an attempt nothing held).
	bits     atomic.Uint32
	mu       sync.Mutex    // guards the fields below
	pushback time.Duration // see ReportPushback, when pushed
	keeps    *[]func()     // see OnKeep; rare, so kept out of line
	// h is what a held result needs, made when the attempt first holds
	// one (or ends), so that an attempt nothing holds stays small. Set
	// once; a call's own context has it inline (callCtx).
	h *heldState
}

// Flags in attemptCtx.bits, above the state's byte.
const (
	flagAttempt  = 1 << (8 + iota) // started by StartAttempt, not WithCall
	flagParallel                   // may overlap other attempts of the call
	flagPushed                     // a pushback was reported (ReportPushback)
)

func (a *attemptCtx) state() uint8      { return uint8(a.bits.Load()) }
func (a *attemptCtx) has(f uint32) bool { return a.bits.Load()&f != 0 }

// setState sets the state; a.mu must be held.
func (a *attemptCtx) setState(s uint8) { a.bits.Store(a.bits.Load()&^0xff | uint32(s)) }

// set sets flag f; a.mu must be held.
func (a *attemptCtx) set(f uint32) { a.bits.Or(f) }

// heldState is the part of an attemptCtx that only a held result (or one
// that ended) uses. Guarded by the attempt's mu.
type heldState struct {
	discard  Discarder
	child    *attemptCtx // the kept attempt whose result this one holds
	releases []Releaser
	first    [4]Releaser     // releases' first backing array: a pipeline defers a few
	err      error           // final error, once done
	next     *attemptCtx     // finished after this one (see Keep)
	holdCtx  context.Context // the context the result was held in, while watched
	watch    ctxwatch.Reg    // the registration with holdCtx
	// lateDiscard is the discard of a result abandoned (its context ended)
	// before any policy discarded it: Discard still runs it.
	lateDiscard Discarder
}

// held returns a.h, making it if needed; a.mu must be held.
func (a *attemptCtx) held() *heldState {
	if a.h == nil {
		a.h = new(heldState)
	}
	return a.h
}

func (a *attemptCtx) Value(key any) any {
	switch key {
	case ctxKey{}:
		return a
	case callKey{}:
		if a.call != nil {
			return a.call
		}
	}
	return a.Context.Value(key)
}

// AfterFunc lets contexts derived from this one follow its cancellation
// without a goroutine, whatever the embedded context is.
func (a *attemptCtx) AfterFunc(f func()) (stop func() bool) {
	if af, ok := a.Context.(afterFuncer); ok {
		return af.AfterFunc(f) // one registration, not a chain of them
	}
	if a.Context.Done() == nil {
		return neverStop // the context never ends: nothing to register
	}
	return context.AfterFunc(a.Context, f)
}

// ForwardWatch registers r with the context underneath.
func (a *attemptCtx) ForwardWatch(r *ctxwatch.Reg) bool { return ctxwatch.Forward(a.Context, r) }

// neverStop is the stop function of a registration with a context that
// never ends.
func neverStop() bool { return false }

// afterFuncer is a context that runs a function when it is done, as the
// context package's own look for.
type afterFuncer interface {
	AfterFunc(func()) func() bool
}

// publish runs the functions given to OnKeep for a kept attempt, or hands
// them to its parent when that is parallel too, so that they run only when
// the outermost parallel attempt is kept.
func (a *attemptCtx) publish(keeps []func()) {
	if p := a.parent; p != nil && p.has(flagParallel) {
		p.mu.Lock()
		if p.keeps == nil {
			p.keeps = new([]func())
		}
		*p.keeps = append(*p.keeps, keeps...)
		p.mu.Unlock()
		return
	}
	for _, f := range keeps {
		f()
	}
}

func (a *attemptCtx) hold(ctx context.Context, discard Discarder) {
	a.mu.Lock()
	if a.state() != stateOpen {
		a.mu.Unlock()
		return
	}
	a.setState(stateHeld)
	h := a.held()
	h.discard = discard
	h.holdCtx = ctx
	// The registration allocates nothing with the module's own contexts,
	// and a context that never ends takes none. The lock orders it
	// before abandon, which takes the lock first.
	if !h.watch.Watch(ctx, (*abandonWatch)(a)) {
		// ctx has ended: abandon at once, on a goroutine of its own, as
		// context.AfterFunc does, once the lock is free.
		go a.abandon()
	}
	a.mu.Unlock()
}

// abandonWatch is an attemptCtx as the watcher of its held result's
// context; a type of its own, so that the context does not show a
// ContextEnded method.
type abandonWatch attemptCtx

func (w *abandonWatch) ContextEnded() { (*attemptCtx)(w).abandon() }

// abandon ends a held result whose context ended first; see Hold.
func (a *attemptCtx) abandon() {
	a.mu.Lock()
	ctx, discard := a.h.holdCtx, a.h.discard // watched only once held: h is set
	a.mu.Unlock()
	if ctx == nil {
		return // already done
	}
	a.finish(Mark(&abandonedError{cause: context.Cause(ctx)}, KindCanceled))
	// The context's end frees the result in its own way (net/http and gRPC
	// end a body or stream whose context ended); a policy that still
	// discards it (a hedge's losing attempt) gets discard run then, so that
	// a body is closed all the same.
	a.mu.Lock()
	a.h.lateDiscard = discard
	a.mu.Unlock()
}

func (a *attemptCtx) finish(err error) {
	a.mu.Lock()
	if a.state() == stateDone {
		a.mu.Unlock()
		return
	}
	a.setState(stateDone)
	h := a.held()
	h.err = err
	rs, next, watched := h.releases, h.next, h.holdCtx != nil
	h.releases, h.discard, h.child, h.next, h.holdCtx = nil, nil, nil, nil, nil
	a.mu.Unlock()
	if watched {
		h.watch.Stop()
	}
	for _, r := range rs {
		r.Release(err)
	}
	if next != nil {
		next.finish(err)
	}
}
