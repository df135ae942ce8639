package resiliencegrpc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/resilience-go/resilience/idempotency"
)

// ReplayedMetadata is the response header metadata key by which
// [IdempotencyServerInterceptor] marks a replayed response ("true").
const ReplayedMetadata = "idempotent-replayed"

// IdempotencyServerInterceptor returns a unary server interceptor that runs
// each call carrying [IdempotencyKey] metadata at most once per key, with
// the semantics of idempotency.Middleware, through an idempotency.Guard on
// store configured by opts:
//
//   - The first call with a key runs; its reply (proto.Marshal) or its
//     status is recorded, with the header and trailer metadata the handler
//     set (grpc.SetHeader, grpc.SendHeader, grpc.SetTrailer) and a
//     fingerprint of the method and the request message (proto.Marshal,
//     deterministic). Metadata set by interceptors outside this one is not
//     recorded: they set it again for each repeat.
//   - A repeat after it completed gets the recorded reply or status and
//     metadata, with the header metadata idempotent-replayed: true; the
//     handler does not run. A recorded reply is rebuilt from the message
//     types registered with protoregistry.GlobalTypes, as generated code
//     registers them.
//   - A repeat while it runs fails with Aborted, advising when to ask
//     again (see idempotency.InFlightError) both as a google.rpc.RetryInfo
//     detail and as a grpc-retry-pushback-ms trailer, which a [Client]
//     honours by retrying with the same key after the wait (it never
//     holds the target's other calls for it); or it waits, with
//     idempotency.WithWait; the same key with another request
//     fails with FailedPrecondition; a key that is empty, not printable
//     ASCII, longer than idempotency.WithMaxKeyLength, or sent twice, with
//     InvalidArgument. Keys are bare (idempotency.ParseKey): a value is the
//     key whole, semicolons and all. Calls without a key run as they are.
//   - Keys are scoped by principal: idempotency.WithContextPrincipal, by
//     default the "authorization" metadata.
//   - A status that reports a server failure (Unknown, Internal,
//     Unavailable, DataLoss, DeadlineExceeded, Canceled) or a call turned
//     away before it was processed (ResourceExhausted, Aborted), a panic,
//     or a record above idempotency.WithMaxResponse releases the key
//     instead of recording it, so a retry runs again. Every other status,
//     OK included, is recorded.
//   - When the store fails, calls fail with Unavailable and a message that
//     says the call was not run and why (the store is full, did not answer
//     in time, or is unavailable), or run without deduplication with
//     idempotency.WithFailOpen.
//
// To see the metadata a keyed call's handler sets, the interceptor gives
// the handler a context whose grpc.ServerTransportStream records it; the
// experimental grpc.SetSendCompressor and grpc.ClientSupportedCompressors,
// which need grpc's own stream, fail in such a handler.
//
// It panics if store is nil or an option is invalid or applies to the HTTP
// middleware only.
func IdempotencyServerInterceptor(store idempotency.Store, opts ...idempotency.Option) grpc.UnaryServerInterceptor {
	g := idempotency.NewGuard(store, opts...)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		vs := metadata.ValueFromIncomingContext(ctx, IdempotencyKey)
		if len(vs) == 0 {
			return handler(ctx, req)
		}
		if len(vs) > 1 {
			return nil, status.Error(codes.InvalidArgument, "resiliencegrpc: more than one idempotency-key")
		}
		key, err := idempotency.ParseKey(vs, true, g.MaxKeyLength())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "resiliencegrpc: invalid idempotency-key: "+err.Error())
		}
		msg, ok := req.(proto.Message)
		if !ok {
			return nil, status.Errorf(codes.Internal, "resiliencegrpc: idempotency: request %T is not a proto message", req)
		}
		fp, err := fingerprint(info.FullMethod, msg)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "resiliencegrpc: idempotency: %v", err)
		}
		var (
			reply   any
			callErr error
		)
		res, err := g.Run(ctx, principal(ctx, g), key, fp, func(ctx context.Context) ([]byte, idempotency.Outcome) {
			var md *mdRecorder
			if st := grpc.ServerTransportStreamFromContext(ctx); st != nil {
				md = &mdRecorder{ServerTransportStream: st}
				ctx = grpc.NewContextWithServerTransportStream(ctx, md)
			}
			reply, callErr = handler(ctx, req)
			header, trailer := md.recorded()
			return encodeOutcome(reply, callErr, header, trailer, g.MaxResponse())
		})
		switch {
		case err == nil && res.Replayed:
			reply, header, trailer, err := decodeOutcome(res.Response)
			grpc.SetHeader(ctx, metadata.Join(header, metadata.Pairs(ReplayedMetadata, "true")))
			grpc.SetTrailer(ctx, trailer)
			return reply, err
		case err == nil:
			return reply, callErr
		case errors.Is(err, idempotency.ErrInFlight):
			return nil, inFlight(ctx, err)
		case errors.Is(err, idempotency.ErrMismatch):
			return nil, status.Error(codes.FailedPrecondition, "resiliencegrpc: this idempotency-key was used for a different call")
		case errors.Is(err, idempotency.ErrStore):
			return nil, status.Error(codes.Unavailable, storeDown(err))
		}
		return nil, status.FromContextError(err).Err()
	}
}

// inFlight returns the Aborted status for a key in flight, with the wait
// the Guard advises as a google.rpc.RetryInfo detail.
func inFlight(ctx context.Context, err error) error {
	st := status.New(codes.Aborted, "resiliencegrpc: a call with this idempotency-key is in flight; retry later")
	wait := time.Second // as the HTTP middleware's least Retry-After
	var ife *idempotency.InFlightError
	if errors.As(err, &ife) && ife.RetryAfter > 0 {
		wait = ife.RetryAfter
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(ife.RetryAfter)}); derr == nil {
			st = d
		}
	}
	// The trailer is what a Client (and grpc-go's own retry) reads: the
	// call retries with its key once the first call may be done.
	grpc.SetTrailer(ctx, metadata.Pairs(PushbackTrailer, strconv.FormatInt(wait.Milliseconds(), 10)))
	return st.Err()
}

// storeDown says what failed when the store could not reserve a call's
// key, without the store's own error (addresses, internals), which the
// Guard counts.
func storeDown(err error) string {
	why := "the idempotency store is unavailable"
	var ne net.Error
	switch {
	case errors.Is(err, idempotency.ErrStoreFull):
		why = "the idempotency store is full"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		why = "the idempotency store is unavailable (it did not answer in time)"
	}
	return "resiliencegrpc: the call was not run: its idempotency-key could not be checked, because " + why + "; retry later"
}

func principal(ctx context.Context, g *idempotency.Guard) string {
	if p, ok := g.Principal(ctx); ok {
		return p
	}
	return strings.Join(metadata.ValueFromIncomingContext(ctx, "authorization"), "\x00")
}

func fingerprint(method string, req proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// serverFailure reports whether code says the server failed, rather than
// answered: such a call is not recorded.
func serverFailure(code codes.Code) bool {
	switch code {
	case codes.Unknown, codes.Internal, codes.Unavailable, codes.DataLoss,
		codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// notProcessed reports whether code says the call was turned away before
// it was processed (throttled, or in conflict with a concurrent call): such
// a call is not recorded either.
func notProcessed(code codes.Code) bool {
	return code == codes.ResourceExhausted || code == codes.Aborted
}

// mdRecorder is the server transport stream a keyed call's handler sees: it
// passes the header and trailer metadata the handler sets on to the call's
// stream and keeps a copy, to be recorded with the outcome.
type mdRecorder struct {
	grpc.ServerTransportStream

	mu      sync.Mutex // guards header and trailer
	header  metadata.MD
	trailer metadata.MD
}

func (r *mdRecorder) SetHeader(md metadata.MD) error {
	if err := r.ServerTransportStream.SetHeader(md); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.header = metadata.Join(r.header, md)
	return nil
}

func (r *mdRecorder) SendHeader(md metadata.MD) error {
	if err := r.ServerTransportStream.SendHeader(md); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.header = metadata.Join(r.header, md)
	return nil
}

func (r *mdRecorder) SetTrailer(md metadata.MD) error {
	if err := r.ServerTransportStream.SetTrailer(md); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trailer = metadata.Join(r.trailer, md)
	return nil
}

// recorded returns the metadata the handler set; none for a nil r.
func (r *mdRecorder) recorded() (header, trailer metadata.MD) {
	if r == nil {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.header, r.trailer
}

// A recorded outcome: a version byte, a kind byte (0: a reply, 1: a
// status); from version 2 on, the header and the trailer metadata (each a
// uvarint count of keys, then per key its length-prefixed name, a count of
// values and the length-prefixed values); then for a reply its message's
// full name (uvarint length) and its encoding, for a status the encoding of
// its google.rpc.Status. Version 1 records (no metadata) are still read.
const outcomeVersion = 2

func encodeOutcome(reply any, err error, header, trailer metadata.MD, max int) ([]byte, idempotency.Outcome) {
	if err != nil {
		st := status.Convert(err)
		switch {
		case serverFailure(st.Code()):
			return nil, idempotency.Release
		case notProcessed(st.Code()):
			return nil, idempotency.NotProcessed
		}
		b, merr := proto.Marshal(st.Proto())
		if merr != nil {
			return nil, idempotency.Release
		}
		out := appendMD(appendMD([]byte{outcomeVersion, 1}, header), trailer)
		return append(out, b...), idempotency.Record
	}
	msg, ok := reply.(proto.Message)
	if !ok {
		return nil, idempotency.Release
	}
	b, merr := proto.Marshal(msg)
	if merr != nil {
		return nil, idempotency.Release
	}
	if len(b) > max {
		return nil, idempotency.TooLarge
	}
	name := string(msg.ProtoReflect().Descriptor().FullName())
	out := appendMD(appendMD([]byte{outcomeVersion, 0}, header), trailer)
	out = binary.AppendUvarint(out, uint64(len(name)))
	out = append(out, name...)
	return append(out, b...), idempotency.Record
}

func appendMD(b []byte, md metadata.MD) []byte {
	b = binary.AppendUvarint(b, uint64(len(md)))
	for k, vs := range md {
		b = appendLP(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendLP(b, v)
		}
	}
	return b
}

func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// mdDecoder reads what appendMD wrote; a malformed record sets bad.
type mdDecoder struct {
	b   []byte
	bad bool
}

func (d *mdDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > uint64(len(d.b)) {
		// Every count and length is bounded by the bytes that follow.
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *mdDecoder) string() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *mdDecoder) md() metadata.MD {
	n := d.uvarint()
	if d.bad || n == 0 {
		return nil
	}
	md := make(metadata.MD, n)
	for i := uint64(0); i < n && !d.bad; i++ {
		k := d.string()
		nv := d.uvarint()
		vs := make([]string, 0, nv)
		for j := uint64(0); j < nv && !d.bad; j++ {
			vs = append(vs, d.string())
		}
		md[k] = vs
	}
	return md
}

func decodeOutcome(rec []byte) (reply any, header, trailer metadata.MD, err error) {
	bad := status.Error(codes.Unavailable, "resiliencegrpc: the recorded reply could not be read")
	if len(rec) < 2 || (rec[0] != 1 && rec[0] != outcomeVersion) {
		return nil, nil, nil, bad
	}
	kind := rec[1]
	rest := rec[2:]
	if rec[0] >= 2 {
		d := &mdDecoder{b: rest}
		header, trailer = d.md(), d.md()
		if d.bad {
			return nil, nil, nil, bad
		}
		rest = d.b
	}
	if kind == 1 {
		var sp spb.Status
		if err := proto.Unmarshal(rest, &sp); err != nil {
			return nil, nil, nil, bad
		}
		return nil, header, trailer, status.ErrorProto(&sp)
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return nil, nil, nil, bad
	}
	name := protoreflect.FullName(rest[k : k+int(n)])
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return nil, nil, nil, status.Error(codes.Internal, fmt.Sprintf("resiliencegrpc: recorded reply type %s is not registered", name))
	}
	msg := mt.New().Interface()
	if err := proto.Unmarshal(rest[k+int(n):], msg); err != nil {
		return nil, nil, nil, bad
	}
	return msg, header, trailer, nil
}
