package resiliencegrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	pushbackgate "github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

// Metadata keys the package reads.
const (
	// IdempotencyKey is the outgoing metadata key that marks a call as safe
	// to retry: a call that carries a non-empty value under it (or under
	// "x-idempotency-key") is idempotent whatever its method, because the
	// server is expected to deduplicate by the key.
	IdempotencyKey = "idempotency-key"
	// PushbackTrailer is the trailer by which a server asks a client to
	// wait before retrying, in milliseconds, or not to retry at all (a
	// negative value), as gRPC's own retry design defines it.
	PushbackTrailer = "grpc-retry-pushback-ms"
)

// maxPushback bounds the delay read from a pushback trailer before any
// policy caps it further, so that absurd values cannot overflow.
const maxPushback = 24 * time.Hour

// ErrNotReplayable is the reason a failed stream is not retried when the
// messages it sent before committing exceed the replay buffer
// ([WithMaxReplayBuffer]). The error a caller receives matches it with
// errors.Is.
var ErrNotReplayable = errors.New("resiliencegrpc: stream cannot be replayed (sent messages exceed the replay buffer)")

// errNoPushback is the reason a failure is not retried when the server
// asked, with a negative or malformed pushback trailer, not to retry.
var errNoPushback = errors.New("resiliencegrpc: server asked not to retry (grpc-retry-pushback-ms)")

// Client runs a gRPC client's calls under a [resilience.Policy]. Build it
// with [NewClient] and install its interceptors on a connection:
//
//	c := resiliencegrpc.NewClient(policy, resiliencegrpc.WithIdempotentMethods("/pkg.Users/Get"))
//	conn, err := grpc.NewClient(addr,
//		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
//		grpc.WithChainStreamInterceptor(c.StreamInterceptor()),
//		...)
//
// A Client is safe for concurrent use, and one Client may serve several
// connections. [UnaryClientInterceptor] and [StreamClientInterceptor] are
// shorthands for a Client with no options.
//
// The zero Client has no policy and no options: its interceptors pass
// every call to gRPC unchanged, as those of NewClient(nil) do. Build a
// Client with NewClient or [Standard] to run calls under a policy.
type Client struct {
	policy resilience.Policy
	c      config
}

// NewClient returns a Client that runs every call under policy (nil means
// each call is sent once, unchanged). Use [resilience.Chain] to run
// several policies. It panics, naming the option, if an option's value is
// invalid.
func NewClient(policy resilience.Policy, opts ...Option) *Client {
	c := newConfig(opts)
	if c.hasPipeline {
		panic("resiliencegrpc: NewClient: WithPipeline applies to Standard only")
	}
	return &Client{policy: policy, c: c}
}

func newConfig(opts []Option) config {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("resiliencegrpc: option %d is nil", i))
		}
		o.apply(&c)
	}
	return c
}

// Standard returns a Client that runs every call under the standard
// pipeline built by standard.New, the same as the HTTP transport's: a
// total timeout, a per-target rate limit and idempotency keys if
// configured, retries (or hedging) paid for from a per-target retry
// budget, a per-target pushback gate (holds calls while the server's
// grpc-retry-pushback-ms lasts, once most of the target's recent answers
// carried one; turned away: ResourceExhausted), a
// per-target circuit breaker, a per-target bulkhead if configured, a
// per-target adaptive concurrency limit if configured (a call beyond it
// fails at once: Unavailable, matching adaptive.ErrLimited), and a
// per-attempt timeout.
// The package documentation of standard gives the
// order and every default. [WithPipeline] changes each part; the Client's
// own options say which calls are idempotent, and so retried:
//
//	c, err := resiliencegrpc.Standard(
//		resiliencegrpc.WithIdempotentMethods("/pkg.Users/Get", "/pkg.Catalog/*"),
//		resiliencegrpc.WithPipeline(standard.WithRetries(2)))
//
// Calls that are not declared idempotent, nor carry an [IdempotencyKey],
// are sent once. Standard returns an error, naming the option, if the
// configuration is invalid. Build it once and share it: each Client has
// its own breakers.
func Standard(opts ...Option) (c *Client, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, ok := r.(string)
			if !ok || !strings.HasPrefix(s, "resiliencegrpc: ") {
				panic(r)
			}
			c, err = nil, errors.New(strings.Replace(s, "NewClient", "Standard", 1))
		}
	}()
	cfg := newConfig(opts)
	p, err := standard.New(cfg.pipeline...)
	if err != nil {
		return nil, err
	}
	return &Client{policy: p, c: cfg}, nil
}

// UnaryClientInterceptor returns an interceptor that runs every unary call
// under policies, composed with resilience.Chain (policies[0] is the
// outermost). It is NewClient(resilience.Chain(policies...)).UnaryInterceptor():
// no method is declared idempotent, so only calls that carry an
// [IdempotencyKey] are retried.
func UnaryClientInterceptor(policies ...resilience.Policy) grpc.UnaryClientInterceptor {
	return NewClient(chain(policies)).UnaryInterceptor()
}

// StreamClientInterceptor returns an interceptor that runs every stream
// under policies, as [UnaryClientInterceptor] does for unary calls.
func StreamClientInterceptor(policies ...resilience.Policy) grpc.StreamClientInterceptor {
	return NewClient(chain(policies)).StreamInterceptor()
}

func chain(ps []resilience.Policy) resilience.Policy {
	if len(ps) == 0 {
		return nil
	}
	return resilience.Chain(ps...)
}

// UnaryInterceptor returns the interceptor for unary calls, for
// grpc.WithChainUnaryInterceptor.
func (c *Client) UnaryInterceptor() grpc.UnaryClientInterceptor { return c.unary }

// StreamInterceptor returns the interceptor for streams, for
// grpc.WithChainStreamInterceptor.
func (c *Client) StreamInterceptor() grpc.StreamClientInterceptor { return c.stream }

func (c *Client) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if c.policy == nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	u := &unaryCall{ctx: ctx, method: method, req: req, reply: reply, cc: cc, invoker: invoker, opts: opts}
	if slices.ContainsFunc(opts, isAfterCall) {
		u.after = new(afterCall)
		u.opts = u.after.split(opts)
	}
	// DoCall puts the call's description and the chain's context in one
	// allocation, and runs u as a value (no closure).
	err := toStatus(resilience.DoCall(ctx, c.policy, c.call(ctx, cc, method, opts), u))
	if u.after != nil {
		u.after.finish(err)
	}
	return err
}

// unaryCall is one unary call as the operation the policies run.
type unaryCall struct {
	ctx        context.Context // the caller's
	method     string
	req, reply any
	cc         *grpc.ClientConn
	invoker    grpc.UnaryInvoker
	opts       []grpc.CallOption // the caller's, without its after-call options
	after      *afterCall        // nil when the caller gave none
}

// Run makes one attempt.
func (u *unaryCall) Run(actx context.Context) error {
	out := u.reply
	parallel := resilience.Parallel(actx)
	if parallel {
		// Attempts overlap (hedging): each decodes into a reply of its
		// own, and only the kept one's is copied to the caller's.
		out = ownReply(actx, u.reply)
	}
	n := len(u.opts)
	octx := outgoingKey(actx)
	if u.after == nil {
		var trailer metadata.MD
		err := u.invoker(octx, u.method, u.req, out, u.cc, append(u.opts[:n:n], grpc.Trailer(&trailer))...)
		return classifyAttempt(u.ctx, octx, err, trailer)
	}
	r := new(received)
	err := u.invoker(octx, u.method, u.req, out, u.cc, u.after.attemptOpts(append(u.opts[:n:n], grpc.Trailer(&r.trailer)), r)...)
	r.ran = true
	if parallel {
		// Published on the goroutine that keeps the attempt, before
		// the policies return.
		resilience.OnKeep(actx, func() { u.after.kept = r })
	} else {
		// Attempts follow one another: the last one is kept.
		u.after.kept = r
	}
	return classifyAttempt(u.ctx, octx, err, r.trailer)
}

// afterCall holds the caller's after-call options: grpc.Header,
// grpc.Trailer, grpc.Peer and grpc.OnFinish. grpc-go runs them once per
// call, with what the attempt it committed received. Given to every
// attempt, they would run once per attempt, and overlapping attempts
// (hedging) would write into the caller's variables at the same time: so
// each attempt gets variables of its own, and the kept attempt's are
// handed to the caller's once the call ends.
type afterCall struct {
	headers, trailers []*metadata.MD
	peers             []*peer.Peer
	onFinish          []func(error)
	// kept is what the kept attempt received: set by the attempt
	// (sequential attempts) or when it is kept (parallel ones), read once
	// the policies returned. Nil if no attempt was made.
	kept *received
}

// unsetMD is what an attempt's header or trailer holds until gRPC fills it
// in: a key no real metadata has (metadata keys are lowercase ASCII
// without control characters), so that an attempt that never had a stream
// (gRPC then runs no after-call option) is told from one that received
// nothing. It is never modified.
var unsetMD = metadata.MD{"\x00unset": nil}

func isUnset(md metadata.MD) bool {
	_, ok := md["\x00unset"]
	return ok
}

// split takes the after-call options out of opts and returns the others,
// which every attempt gets.
func (a *afterCall) split(opts []grpc.CallOption) []grpc.CallOption {
	rest := make([]grpc.CallOption, 0, len(opts))
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			a.headers = append(a.headers, o.HeaderAddr)
		case grpc.TrailerCallOption:
			a.trailers = append(a.trailers, o.TrailerAddr)
		case grpc.PeerCallOption:
			a.peers = append(a.peers, o.PeerAddr)
		case grpc.OnFinishCallOption:
			a.onFinish = append(a.onFinish, o.OnFinish)
		default:
			rest = append(rest, o)
		}
	}
	return rest
}

func isAfterCall(o grpc.CallOption) bool {
	switch o.(type) {
	case grpc.HeaderCallOption, grpc.TrailerCallOption, grpc.PeerCallOption, grpc.OnFinishCallOption:
		return true
	}
	return false
}

// received is what one attempt received, for the caller's after-call
// options. The trailer is always read: its pushback is the policies'.
type received struct {
	header, trailer metadata.MD
	peer            *peer.Peer
	ran             bool // the attempt returned
}

// attemptOpts returns opts, which ends with grpc.Trailer(&r.trailer), with
// the options that fill in r for the caller's after-call options.
func (a *afterCall) attemptOpts(opts []grpc.CallOption, r *received) []grpc.CallOption {
	if len(a.trailers) > 0 {
		r.trailer = unsetMD
	}
	if len(a.headers) > 0 {
		r.header = unsetMD
		opts = append(opts, grpc.Header(&r.header))
	}
	if len(a.peers) > 0 {
		r.peer = new(peer.Peer)
		opts = append(opts, grpc.Peer(r.peer))
	}
	return opts
}

// finish runs the caller's after-call options once the call ended with
// err, as gRPC would for one attempt: the header, trailer and peer that
// the kept attempt received, if it had a stream, then every OnFinish.
func (a *afterCall) finish(err error) {
	if r := a.kept; r != nil && r.ran {
		if len(a.headers) > 0 && !isUnset(r.header) {
			for _, h := range a.headers {
				*h = r.header
			}
		}
		if len(a.trailers) > 0 && !isUnset(r.trailer) {
			for _, t := range a.trailers {
				*t = r.trailer
			}
		}
		if p := r.peer; p != nil && (p.Addr != nil || p.LocalAddr != nil || p.AuthInfo != nil) {
			for _, q := range a.peers {
				*q = *p
			}
		}
	}
	for _, f := range a.onFinish {
		f(err)
	}
}

// ownReply returns a new, empty reply of the same type as reply, and
// arranges for it to be copied into reply if the attempt in ctx is kept.
// A reply that is neither a proto.Message nor a pointer cannot be decoded
// into anyway; it is returned as it is.
func ownReply(ctx context.Context, reply any) any {
	if m, ok := reply.(proto.Message); ok {
		own := m.ProtoReflect().New().Interface()
		resilience.OnKeep(ctx, func() {
			proto.Reset(m)
			proto.Merge(m, own)
		})
		return own
	}
	v := reflect.ValueOf(reply)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return reply
	}
	own := reflect.New(v.Type().Elem())
	resilience.OnKeep(ctx, func() { v.Elem().Set(own.Elem()) })
	return own.Interface()
}

// call describes a call for the policies.
func (c *Client) call(ctx context.Context, cc *grpc.ClientConn, method string, opts []grpc.CallOption) resilience.Call {
	return resilience.Call{
		Target:     target(cc, opts),
		Method:     method,
		Idempotent: c.idempotent(ctx, method),
	}
}

func (c *Client) idempotent(ctx context.Context, method string) bool {
	if c.c.methods[method] {
		return true
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 && c.c.methods[method[:i+1]+"*"] {
		return true
	}
	if c.c.idempotentIf != nil && c.c.idempotentIf(ctx, method) {
		return true
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	for _, k := range [...]string{IdempotencyKey, "x-idempotency-key"} {
		if vs := md[k]; len(vs) > 0 && vs[0] != "" {
			return true
		}
	}
	return false
}

// target names the dependency: the authority a call option overrides, or
// the endpoint of the connection's target (see [targetEndpoint]).
func target(cc *grpc.ClientConn, opts []grpc.CallOption) string {
	for _, o := range opts {
		if a, ok := o.(grpc.AuthorityOverrideCallOption); ok && a.Authority != "" {
			return a.Authority
		}
	}
	if cc == nil {
		return ""
	}
	return targetEndpoint(cc.Target())
}

// targetEndpoint returns the endpoint a target names, without its
// resolver's scheme and authority, so that "dns:///api:443" and "api:443"
// share per-target policies and no metric records a URL: "api:443" for
// "dns:///api:443", "dns://8.8.8.8/api:443" and "passthrough:///api:443";
// "orders" for a custom resolver's "orders:///orders" (its authority when
// the path is empty, as in "orders://orders"); the socket's path for
// "unix:///tmp/s" or "unix:/tmp/s", its name for "unix-abstract:s";
// "api:443" for "dns:api:443". A target with no scheme ("api:443",
// "[::1]:50051") is returned as it is.
func targetEndpoint(t string) string {
	if scheme, rest, ok := strings.Cut(t, "://"); ok && isScheme(scheme) {
		authority, endpoint, _ := strings.Cut(rest, "/")
		if i := strings.IndexAny(endpoint, "?#"); i >= 0 {
			endpoint = endpoint[:i]
		}
		switch {
		case scheme == "unix" && endpoint != "":
			return "/" + endpoint
		case endpoint != "":
			return endpoint
		}
		if i := strings.IndexAny(authority, "?#"); i >= 0 {
			authority = authority[:i]
		}
		return authority
	}
	// "scheme:endpoint", as in "dns:api:443" or "unix:/tmp/s", only for a
	// registered resolver's scheme: "api:443" has the same form.
	if scheme, rest, ok := strings.Cut(t, ":"); ok && isScheme(scheme) && resolver.Get(scheme) != nil {
		return rest
	}
	return t
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// classify marks an attempt's error for the policies; see the package
// documentation for the rules. ctx is the caller's context, trailer the
// attempt's trailer metadata. A status error also carries its code's name
// for the policies' telemetry (error.type).
func classify(ctx context.Context, err error, trailer metadata.MD) error {
	return classifyAttempt(ctx, nil, err, trailer)
}

// classifyAttempt is classify for an attempt sent with the outgoing
// context octx (nil when unknown), whose metadata says whether the call
// carries an idempotency key: the idempotency server interceptor answers
// such a call Aborted while an earlier attempt with its key runs, and
// Unavailable when it cannot check keys, while it still serves the calls
// without one.
func classifyAttempt(ctx, octx context.Context, err error, trailer metadata.MD) error {
	if err == nil || err == io.EOF {
		return nil
	}
	st, ok := status.FromError(err)
	if ok {
		err = &codeError{err: err, code: st.Code()}
	}
	if callerEnded(ctx) {
		// The caller gave up, by canceling or by its own deadline:
		// never retried, never counted against the dependency.
		return resilience.Mark(err, resilience.KindCanceled)
	}
	if !ok {
		// Not from gRPC: let the policies judge it.
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		scope := resilience.PushbackRequest
		if keyed(octx) {
			scope = resilience.PushbackCall
		}
		return withPushback(err, trailer, resilience.KindTransient, scope)
	case codes.Aborted:
		if !keyed(octx) {
			break
		}
		// An earlier attempt with the call's key still runs on the
		// server: ask again with the key, when the server says.
		d, ok, stop := pushback(trailer)
		switch {
		case ok:
			return resilience.MarkScopedRetryAfter(err, resilience.KindThrottled, d, resilience.PushbackCall)
		case stop:
			return resilience.Mark(fmt.Errorf("%w (%w)", err, errNoPushback), resilience.KindRejected)
		}
		return resilience.Mark(err, resilience.KindThrottled)
	case codes.ResourceExhausted:
		d, ok, stop := pushback(trailer)
		switch {
		case ok:
			return resilience.MarkScopedRetryAfter(err, resilience.KindThrottled, d, resilience.PushbackRequest)
		case stop:
			return resilience.Mark(fmt.Errorf("%w (%w)", err, errNoPushback), resilience.KindRejected)
		}
		return resilience.Mark(err, resilience.KindRejected)
	case codes.DeadlineExceeded:
		// An attempt's deadline (a policy's attempt timeout) with the
		// caller's still alive: the dependency was too slow.
		return resilience.Mark(err, resilience.KindTransient)
	case codes.Unknown, codes.Internal, codes.DataLoss:
		return resilience.Mark(err, resilience.KindPermanent)
	}
	return resilience.Mark(err, resilience.KindRejected)
}

// callerEnded reports whether the caller's context ended, or its deadline
// passed: the deadline travels to the server, whose DeadlineExceeded may
// arrive before the context's own timer has fired.
func callerEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// keyed reports whether the outgoing metadata of octx carries an
// idempotency key.
func keyed(octx context.Context) bool {
	if octx == nil {
		return false
	}
	md, _ := metadata.FromOutgoingContext(octx)
	for _, k := range [...]string{IdempotencyKey, "x-idempotency-key"} {
		if vs := md[k]; len(vs) > 0 && vs[0] != "" {
			return true
		}
	}
	return false
}

// withPushback marks a transient failure with the server's pushback, of
// the given scope, or as permanent if the server asked not to retry.
func withPushback(err error, trailer metadata.MD, k resilience.Kind, scope resilience.PushbackScope) error {
	d, ok, stop := pushback(trailer)
	switch {
	case ok:
		return resilience.MarkScopedRetryAfter(err, k, d, scope)
	case stop:
		return resilience.Mark(fmt.Errorf("%w (%w)", err, errNoPushback), resilience.KindPermanent)
	}
	return resilience.Mark(err, k)
}

// pushback reads the pushback trailer. ok reports a request to wait d
// (capped at maxPushback); stop reports a request not to retry: a negative
// or malformed value, or more than one value.
func pushback(md metadata.MD) (d time.Duration, ok, stop bool) {
	vs := md[PushbackTrailer]
	switch len(vs) {
	case 0:
		return 0, false, false
	case 1:
	default:
		return 0, false, true
	}
	v := vs[0]
	neg := strings.HasPrefix(v, "-")
	if neg {
		v = v[1:]
	}
	if v == "" || !isDigits(v) {
		return 0, false, true
	}
	if neg {
		if strings.Trim(v, "0") != "" {
			return 0, false, true
		}
		return 0, true, false // "-0"
	}
	v = strings.TrimLeft(v, "0") // "0001" is 1 ms; "" once trimmed is 0
	const maxDigits = 9          // 999,999,999 ms, far above maxPushback
	if len(v) > maxDigits {
		return maxPushback, true, false
	}
	var ms int64
	for _, c := range v {
		ms = ms*10 + int64(c-'0')
	}
	return min(time.Duration(ms)*time.Millisecond, maxPushback), true, false
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// toStatus turns the error a policy returned into the status error the
// caller receives. An attempt's own status error is returned as it is when
// no policy added to it; otherwise the result carries the status (the
// attempt's, or the one the policy's error maps to) and wraps the policy's
// error, so that errors.Is still matches the policies' sentinels.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code, fromPolicy := policyCode(err)
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		if st := gs.GRPCStatus(); st != nil && (!fromPolicy || st.Code() == code) {
			if raw, ok := gs.(error); ok && raw.Error() == err.Error() {
				return raw // only marks wrap it
			}
			return &statusError{st: st, err: err, own: true}
		}
	}
	if !fromPolicy {
		code = status.FromContextError(err).Code() // Canceled, DeadlineExceeded or Unknown
	}
	return &statusError{st: status.New(code, err.Error()), err: err}
}

// policyCode maps the policies' own errors to the codes a caller sees.
func policyCode(err error) (codes.Code, bool) {
	switch {
	case errors.Is(err, timeout.ErrTimeout):
		return codes.DeadlineExceeded, true
	case errors.Is(err, breaker.ErrOpen), errors.Is(err, bulkhead.ErrFull), errors.Is(err, adaptive.ErrLimited), errors.Is(err, ratelimit.ErrUnavailable):
		return codes.Unavailable, true
	case errors.Is(err, ratelimit.ErrLimited), errors.Is(err, pushbackgate.ErrClosed):
		return codes.ResourceExhausted, true
	}
	return codes.OK, false
}

// statusError is a status error that wraps the error a policy returned.
type statusError struct {
	st  *status.Status
	err error
	own bool // st is an attempt's status, which err's text already shows
}

func (e *statusError) Error() string {
	if e.own {
		return e.err.Error()
	}
	return "rpc error: code = " + e.st.Code().String() + " desc = " + e.err.Error()
}

// GRPCStatus returns the status, for status.FromError and status.Code.
func (e *statusError) GRPCStatus() *status.Status { return e.st }

// Unwrap returns the policy's error.
func (e *statusError) Unwrap() error { return e.err }
