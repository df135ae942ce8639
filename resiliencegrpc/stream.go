package resiliencegrpc

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resilience-go/resilience"
)

// ReplayOverhead is what each buffered message counts against the replay
// buffer on top of its size, so that a stream of empty messages is bounded
// too.
const ReplayOverhead = 64

// How a stream runs under the policies
//
// The policies run on a goroutine of their own, started by the interceptor
// and ended when they return: when an attempt commits or the policies give
// up. Each run of the operation (attempt) opens a stream, replays the
// messages sent so far, makes it the one the caller's calls go to, and
// waits for its response header (Header blocks until it arrives or the
// stream ends). A header commits the attempt: the operation holds its
// result (resilience.Hold) and returns nil, and the resources the policies
// took stay taken until the stream ends, which grpc.OnFinish reports. A
// stream that ends without a header reached the caller with nothing, so
// its status is the attempt's error, and the policies may try again.
//
// The caller's goroutines meanwhile send and receive on the current
// attempt. An error from an attempt that did not commit is not returned at
// once: the caller's call waits for the policies' decision and goes on
// with the next attempt, or returns the policies' error.

// clientStream is the grpc.ClientStream the stream interceptor returns.
type clientStream struct {
	ctx      context.Context // the caller's
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption // the caller's, without its OnFinish options
	onFinish []func(error)     // the caller's grpc.OnFinish: run once, when the stream ends
	replay   bool              // the call may be retried: keep sent messages
	max      int               // replay buffer bound, in bytes

	// sendMu orders the messages written to an attempt: the caller's
	// SendMsg and CloseSend, and the replay onto a new attempt, hold it
	// while they write. It is never taken while holding mu.
	sendMu sync.Mutex

	reportedC chan struct{} // closed once the caller's OnFinish options have run
	fin       atomic.Bool   // finished, read without mu

	mu        sync.Mutex // guards the fields below
	cur       *attempt   // where the caller's calls go; nil until the first attempt opens
	settled   bool       // cur is final: it committed, ended cleanly, or the caller took its Context
	finished  bool       // the policies returned
	reported  bool       // the caller's OnFinish ran
	err       error      // the policies' error, as a status error, once finished
	buf       []any      // messages sent before the stream settled, to replay
	size      int        // their size, as counted against max
	overflow  bool       // a message could not be kept: no attempt may follow
	closeSent bool
	changed   chan struct{} // closed and replaced whenever the fields above change
}

// attempt is one attempt's stream.
type attempt struct {
	s      *clientStream
	stream grpc.ClientStream // set before the attempt becomes current
	cancel context.CancelFunc
	ctx    context.Context // the caller's
	actx   context.Context // the policies' for this attempt: where a pushback is reported
	up     *uploadCtx      // a client-streaming attempt's context, if its clock waits for CloseSend
	ended  chan struct{}   // closed when the stream ends
	// replayed is set once the attempt has replayed what was sent before
	// it: after that, its commit reaches the policies at once.
	replayed atomic.Bool

	mu   sync.Mutex  // guards the fields below
	err  error       // the stream's final status, once ended
	done func(error) // ends the held result, once committed
}

func (c *Client) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.policy == nil {
		return streamer(ctx, desc, cc, method, opts...)
	}
	call := c.call(ctx, cc, method, opts)
	opts, onFinish := splitOnFinish(opts)
	call.OutcomeAtEnd = true // a stream's outcome is its final status
	call.Sequential = true   // the caller sends on one attempt at a time: never hedged
	streamNoReplay(&call)    // see idempotency_client.go
	s := &clientStream{
		ctx:      ctx,
		desc:     desc,
		cc:       cc,
		method:   method,
		streamer: streamer,
		opts:     opts,
		onFinish: onFinish,
		replay:   call.Idempotent,
		max:      c.c.maxReplay,
		changed:  make(chan struct{}),

		reportedC: make(chan struct{}),
	}
	go s.run(c.policy, resilience.WithCall(ctx, call))
	for {
		s.mu.Lock()
		cur, finished, err, ch := s.cur, s.finished, s.err, s.changed
		s.mu.Unlock()
		switch {
		case cur != nil:
			return s, nil
		case finished && err != nil:
			return nil, err
		case finished:
			return nil, status.Error(codes.Internal, "resiliencegrpc: the policy returned without opening the stream")
		}
		<-ch
	}
}

// splitOnFinish takes the grpc.OnFinish options out of opts. gRPC runs
// the OnFinish options of a stream once, when the stream ends; given to
// every attempt, they would run at the end of each, and an interceptor
// outside this one (another Client's, one that ends a span) would take the
// end of an attempt that is retried for the end of the stream. They run
// once instead, when the stream ends (see reportEnd), as with gRPC's own
// retry.
func splitOnFinish(opts []grpc.CallOption) (rest []grpc.CallOption, onFinish []func(error)) {
	for i, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			if rest == nil {
				rest = append(make([]grpc.CallOption, 0, len(opts)-1), opts[:i]...)
			}
			onFinish = append(onFinish, f.OnFinish)
		} else if rest != nil {
			rest = append(rest, o)
		}
	}
	if rest == nil && onFinish == nil {
		return opts, nil
	}
	return rest, onFinish
}

// run runs the policies, on a goroutine of its own.
func (s *clientStream) run(p resilience.Policy, ctx context.Context) {
	err := p.Do(ctx, s.attempt)
	s.mu.Lock()
	s.finished = true
	s.fin.Store(true)
	s.err = toStatus(err)
	s.broadcastLocked()
	s.mu.Unlock()
	s.reportEnd()
}

// reportEnd runs the caller's OnFinish options once the stream has ended:
// when the policies have returned and, if an attempt is final, that
// attempt's stream has ended too. It is called whenever either happens.
func (s *clientStream) reportEnd() {
	s.mu.Lock()
	if s.reported || !s.finished {
		s.mu.Unlock()
		return
	}
	err := s.err
	if s.settled && s.cur != nil {
		a := s.cur
		select {
		case <-a.ended:
			err = a.err // set before ended was closed
		default:
			s.mu.Unlock()
			return // the stream goes on
		}
	}
	s.reported = true
	s.mu.Unlock()
	for _, f := range s.onFinish {
		f(err)
	}
	close(s.reportedC)
}

// seenCommit is called when the caller sees attempt a commit (its header
// or a message). It waits for the policies to return, which they do as
// soon as they see the commit too, so that what they record about it (a
// breaker's verdict on its probe) happens before the caller sees it. On a
// stream where the client streams, it does not wait while a still replays
// the messages sent before it: a server may answer before it has read
// them, and the caller may then have to read for the server to go on. A
// server that streams only its answer has read the one request first.
func (s *clientStream) seenCommit(a *attempt) {
	if s.fin.Load() || s.desc.ClientStreams && !a.replayed.Load() {
		return
	}
	for {
		s.mu.Lock()
		finished, ch := s.finished, s.changed
		s.mu.Unlock()
		if finished {
			return
		}
		<-ch
	}
}

// endSeen is called when the caller's RecvMsg saw the stream end on
// attempt a, the final one, with err (nil for a clean end). It waits for
// the end to be reported, so that what the policies record about the
// stream (a breaker's count, a released slot) and the caller's OnFinish
// happen before the caller sees the end, as OnFinish does with gRPC.
func (s *clientStream) endSeen(a *attempt, err error) {
	a.finish(err)
	<-s.reportedC
}

func (s *clientStream) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// attempt is the policies' operation: it opens a stream, replays what was
// sent, and returns once the stream committed or ended.
func (s *clientStream) attempt(actx context.Context) error {
	s.mu.Lock()
	if prev := s.cur; s.settled && prev != nil {
		// The caller took the previous attempt's context, which commits
		// it (see Context): its failure is the stream's.
		s.mu.Unlock()
		return prev.committedErr()
	}
	if s.overflow {
		// A message sent during the wait before this attempt could not
		// be kept: a new attempt would lose it.
		s.mu.Unlock()
		err := status.Error(codes.Unavailable, ErrNotReplayable.Error())
		return resilience.Mark(&codeError{err: err, code: codes.Unavailable}, resilience.KindPermanent)
	}
	s.mu.Unlock()

	var base context.Context = streamCtx{Context: outgoingKey(actx), caller: s.ctx}
	holdCtx := actx
	up := s.upload(actx)
	if up != nil {
		base, holdCtx = up, up.outer
	}
	sctx, cancel := context.WithCancel(base)
	if up != nil {
		cancelStream := cancel
		cancel = func() {
			cancelStream()
			up.end(context.Canceled)
		}
	}
	a := &attempt{s: s, cancel: cancel, ctx: s.ctx, actx: actx, up: up, ended: make(chan struct{})}
	n := len(s.opts)
	s.sendMu.Lock()
	cs, err := s.streamer(sctx, s.desc, s.cc, s.method, append(s.opts[:n:n], grpc.OnFinish(a.finish))...)
	if err != nil {
		s.sendMu.Unlock()
		cancel()
		return s.limit(classify(s.ctx, err, nil))
	}
	a.stream = cs
	s.mu.Lock()
	if prev := s.cur; s.settled && prev != nil {
		// The caller took the previous attempt's context meanwhile.
		s.mu.Unlock()
		s.sendMu.Unlock()
		cancel()
		return prev.committedErr()
	}
	s.cur = a
	buf, closeSent := s.buf, s.closeSent
	s.broadcastLocked()
	s.mu.Unlock()
	for _, m := range buf {
		if cs.SendMsg(m) != nil {
			break // the stream ended; Header reports it
		}
	}
	if closeSent {
		cs.CloseSend()
		a.sent()
	}
	s.sendMu.Unlock()
	a.replayed.Store(true)

	if md, _ := cs.Header(); md != nil {
		if up != nil {
			up.stopClock()
		}
		s.settle()
		a.mu.Lock()
		select {
		case <-a.ended:
			// It already ended: report its outcome now, as one that must
			// not be retried, since the caller may have seen its header.
			err := a.err
			a.mu.Unlock()
			final := classify(s.ctx, err, cs.Trailer())
			a.reportPushback(final)
			return notReplayable(final, nil)
		default:
		}
		a.done = resilience.Hold(holdCtx, cancel)
		a.mu.Unlock()
		return nil
	}
	// The stream ended without a header: the caller received nothing.
	<-a.ended
	if a.err == nil {
		s.settle()
		return nil
	}
	s.mu.Lock()
	settled := s.settled
	s.mu.Unlock()
	if settled {
		return a.committedErr() // the caller took its context
	}
	return s.limit(classify(s.ctx, a.err, cs.Trailer()))
}

// committedErr is the outcome of attempt a, which ended and which the
// caller committed to: its failure, never retried.
func (a *attempt) committedErr() error {
	<-a.ended
	return notReplayable(classify(a.ctx, a.err, a.stream.Trailer()), nil)
}

// limit marks err as not retryable if sent messages were lost.
func (s *clientStream) limit(err error) error {
	s.mu.Lock()
	overflow := s.overflow
	s.mu.Unlock()
	if overflow {
		return notReplayable(err, ErrNotReplayable)
	}
	return err
}

// notReplayable marks err so that no retry follows, keeping what a
// breaker counts: a transient failure becomes permanent, throttling a
// rejection. reason, if not nil, is wrapped.
func notReplayable(err, reason error) error {
	k := resilience.Classify(err)
	switch k {
	case resilience.KindTransient:
		k = resilience.KindPermanent
	case resilience.KindThrottled:
		k = resilience.KindRejected
	default:
		return err
	}
	if reason != nil {
		err = fmt.Errorf("%w (%w)", err, reason)
	}
	return resilience.Mark(err, k)
}

// settle records that the current attempt is final.
func (s *clientStream) settle() {
	s.mu.Lock()
	s.settled = true
	s.buf, s.size = nil, 0
	s.broadcastLocked()
	s.mu.Unlock()
}

// finish is the attempt's grpc.OnFinish: the stream ended with err.
// The caller's RecvMsg calls it too when it sees the end (see
// endSeen), so that the end does not depend on an interceptor inside this
// one running OnFinish; only the first call counts.
func (a *attempt) finish(err error) {
	a.mu.Lock()
	select {
	case <-a.ended:
		a.mu.Unlock()
		return
	default:
	}
	a.err = err
	close(a.ended)
	done := a.done
	a.mu.Unlock()
	if done != nil {
		// The stream committed: its final status reaches the policies
		// that wait for its end (a breaker), with the server's pushback,
		// which is also reported as a pause asked for by the dependency
		// (resilience.ReportPushback) for a gate to read at the end.
		var trailer metadata.MD
		if err != nil {
			// gRPC runs OnFinish with no lock of the stream's held.
			trailer = a.stream.Trailer()
		}
		final := classify(a.ctx, err, trailer)
		a.reportPushback(final)
		done(final)
	}
	a.cancel()
	a.s.reportEnd()
}

// reportPushback reports the pause the server asked for with the final
// status of a committed stream (final, classified with its trailer) as one
// the dependency asked for whatever the outcome (resilience.ReportPushback):
// a committed stream is never retried, so final does not stay retryable,
// and a gate reads the reported pause when the result ends.
func (a *attempt) reportPushback(final error) {
	if d, ok := resilience.RetryAfter(final); ok && resilience.Classify(final).Retryable() {
		resilience.ReportPushback(a.actx, d)
	}
}

// current returns the attempt the caller's calls go to.
func (s *clientStream) current() *attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// next waits for the policies' decision about attempt a, which ended
// before it committed, and returns the attempt that follows it. ok is false
// when none will: a is final, or the policies gave up with err. When a is
// final, next also waits for the policies to return, so that what they
// record about a (a breaker's count of its outcome) happens before the
// caller sees its end.
func (s *clientStream) next(a *attempt) (n *attempt, err error, ok bool) {
	for {
		s.mu.Lock()
		cur, settled, finished, ferr, ch := s.cur, s.settled, s.finished, s.err, s.changed
		s.mu.Unlock()
		switch {
		case cur != a:
			return cur, nil, true
		case settled && finished:
			return nil, nil, false
		case finished:
			return nil, ferr, false
		}
		<-ch
	}
}

// Header returns the header of the attempt that committed, waiting for
// attempts that end without one to be retried.
func (s *clientStream) Header() (metadata.MD, error) {
	a := s.current()
	for {
		md, err := a.stream.Header()
		if md != nil {
			s.seenCommit(a)
		}
		if md != nil || err != nil {
			return md, err
		}
		n, _, ok := s.next(a)
		if !ok {
			// As gRPC does: no header, and RecvMsg tells the status.
			return nil, nil
		}
		a = n
	}
}

// Trailer returns the trailer of the current attempt.
func (s *clientStream) Trailer() metadata.MD { return s.current().stream.Trailer() }

// Context returns the context of the stream, which is done when the stream
// ends. As with gRPC's own retry, asking for it commits the stream to its
// current attempt: the stream is no longer retried, so that the context
// lives as long as the stream. Each attempt has a stream and a context of
// its own, and peer.FromContext, for example, reads the one the stream
// commits to.
func (s *clientStream) Context() context.Context {
	s.mu.Lock()
	if !s.settled {
		s.settled = true
		s.buf, s.size = nil, 0
		s.broadcastLocked()
	}
	a := s.cur
	s.mu.Unlock()
	return a.stream.Context()
}

// CloseSend closes the sending side, now and on any later attempt.
func (s *clientStream) CloseSend() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	s.closeSent = true
	a := s.cur
	s.mu.Unlock()
	err := a.stream.CloseSend()
	a.sent()
	return err
}

// sent records that the client has finished sending on attempt a: the
// attempt timeout of a client-streaming call starts now (see upload).
func (a *attempt) sent() {
	if a.up != nil {
		a.up.startClock()
	}
}

// SendMsg sends m on the current attempt and keeps it for replay until the
// stream commits. If the attempt ended before committing, SendMsg waits for
// the next one, which replays m, and returns io.EOF only when none follows.
func (s *clientStream) SendMsg(m any) error {
	s.sendMu.Lock()
	s.mu.Lock()
	a := s.cur
	kept := false
	if s.replay && !s.settled && !s.finished && !s.overflow {
		if size, ok := msgSize(m); ok && s.size+size <= s.max {
			s.buf = append(s.buf, m)
			s.size += size
			kept = true
		} else {
			s.overflow = true
			s.buf, s.size = nil, 0
		}
	}
	s.mu.Unlock()
	err := a.stream.SendMsg(m)
	s.sendMu.Unlock()
	if err != io.EOF || !kept {
		return err
	}
	if _, _, ok := s.next(a); ok {
		return nil // the next attempt replayed m
	}
	return io.EOF
}

// RecvMsg receives from the current attempt. An error from an attempt that
// did not commit waits for the policies' decision: the call goes on with
// the next attempt, or returns the policies' error.
//
// When it returns the stream's end (an error, io.EOF, or a response that
// ends a stream whose server does not stream), the end has been reported:
// the policies have counted it and the caller's grpc.OnFinish has run.
func (s *clientStream) RecvMsg(m any) error {
	a := s.current()
	for {
		err := a.stream.RecvMsg(m)
		switch {
		case err == nil && s.desc.ServerStreams:
			s.seenCommit(a)
			return nil
		case err == nil, err == io.EOF:
			// A message or io.EOF means a committed, so final, attempt.
			s.endSeen(a, nil)
			return err
		}
		n, ferr, ok := s.next(a)
		switch {
		case ok:
			a = n
		case ferr != nil:
			<-s.reportedC
			return ferr
		default:
			s.endSeen(a, err)
			return err
		}
	}
}

// msgSize returns what m counts against the replay buffer; ok is false if
// m cannot be sized.
func msgSize(m any) (n int, ok bool) {
	switch m := m.(type) {
	case proto.Message:
		return proto.Size(m) + ReplayOverhead, true
	case []byte:
		return len(m) + ReplayOverhead, true
	}
	return 0, false
}

// streamCtx is a stream attempt's context. It reports the caller's
// deadline instead of the attempt's, so that the policies' timeouts bound
// the time until the stream commits and are not sent to the server as the
// stream's grpc-timeout; it is done when the attempt's context is.
type streamCtx struct {
	context.Context // the attempt's
	caller          context.Context
}

func (c streamCtx) Deadline() (time.Time, bool) { return c.caller.Deadline() }

// AfterFunc lets derived contexts follow this one without a goroutine.
func (c streamCtx) AfterFunc(f func()) (stop func() bool) { return context.AfterFunc(c.Context, f) }

// upload returns the context for an attempt of a client-streaming call
// (the client sends a stream, the server answers once) whose attempt has a
// deadline of its own (a per-attempt timeout), or nil for any other.
//
// A gRPC server answers a client stream, header included, only when it has
// read it all, so such a stream commits only at its end. A per-attempt
// timeout would then bound the client's own sending, and every upload
// longer than it would fail, where plain gRPC, under the same overall
// deadline, succeeds. So the stream's context ends with the context
// outside the attempt (the caller's, a total timeout's) and, once the
// client has finished sending (CloseSend), after the time the attempt
// timeout allows, counted from then. It needs the attempt's own context
// (resilience.AttemptContext): a call that no retry policy runs in
// attempts keeps the timeout as it is.
func (s *clientStream) upload(actx context.Context) *uploadCtx {
	if !s.desc.ClientStreams || s.desc.ServerStreams {
		return nil
	}
	outer, ok := resilience.AttemptContext(actx)
	if !ok {
		return nil
	}
	dl, ok := actx.Deadline()
	if !ok {
		return nil
	}
	if odl, ok := outer.Deadline(); ok && !dl.Before(odl) {
		return nil // no deadline inside the attempt
	}
	budget := time.Until(dl)
	if budget <= 0 {
		return nil
	}
	u := &uploadCtx{values: outgoingKey(actx), outer: outer, caller: s.ctx, budget: budget, done: make(chan struct{})}
	stop := context.AfterFunc(outer, func() { u.end(outer.Err()) })
	u.mu.Lock()
	u.stop = stop
	u.mu.Unlock()
	return u
}

// uploadCtx is the context of a client-streaming attempt whose attempt
// timeout starts when the client has finished sending (see upload). Like
// streamCtx, it reports the caller's deadline, so that no policy's timeout
// is sent to the server as grpc-timeout.
type uploadCtx struct {
	values context.Context // the attempt's: for Value
	outer  context.Context // the context outside the attempt: ends this one
	caller context.Context // for Deadline
	budget time.Duration   // the attempt timeout's, from CloseSend

	mu      sync.Mutex  // guards the fields below
	stop    func() bool // the registration with outer; nil until made
	done    chan struct{}
	err     error
	timer   *time.Timer
	stopped bool // the stream committed: the clock no longer runs
}

func (u *uploadCtx) Deadline() (time.Time, bool) { return u.caller.Deadline() }
func (u *uploadCtx) Done() <-chan struct{}       { return u.done }
func (u *uploadCtx) Value(key any) any           { return u.values.Value(key) }

func (u *uploadCtx) Err() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// startClock starts the attempt timeout: the client has finished sending.
func (u *uploadCtx) startClock() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil && u.timer == nil && !u.stopped {
		u.timer = time.AfterFunc(u.budget, func() { u.end(context.DeadlineExceeded) })
	}
}

// stopClock stops the attempt timeout for good: the stream committed.
func (u *uploadCtx) stopClock() {
	u.mu.Lock()
	u.stopped = true
	t := u.timer
	u.mu.Unlock()
	if t != nil {
		t.Stop()
	}
}

// end ends the context with err, once, and lets go of its timer and of
// its registration with outer.
func (u *uploadCtx) end(err error) {
	u.mu.Lock()
	if u.err != nil {
		u.mu.Unlock()
		return
	}
	u.err = err
	close(u.done)
	t, stop := u.timer, u.stop
	u.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if stop != nil { // nil if it is the registration that ended u
		stop()
	}
}
