package resiliencegrpc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

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
//     status is recorded, with a fingerprint of the method and the request
//     message (proto.Marshal, deterministic).
//   - A repeat after it completed gets the recorded reply or status, and
//     the header metadata idempotent-replayed: true; the handler does not
//     run. A recorded reply is rebuilt from the message types registered
//     with protoregistry.GlobalTypes, as generated code registers them.
//   - A repeat while it runs fails with Aborted and a
//     grpc-retry-pushback-ms trailer of 1000 (or waits, with
//     idempotency.WithWait), which a [Client] retries with the same key
//     after the pushback; the same key with another request with
//     FailedPrecondition; a key that is empty, not printable ASCII, longer
//     than idempotency.WithMaxKeyLength, or sent twice, with
//     InvalidArgument. Calls without a key run as they are.
//   - Keys are scoped by principal: idempotency.WithContextPrincipal, by
//     default the "authorization" metadata.
//   - A status that reports a server failure (Unknown, Internal,
//     Unavailable, DataLoss, DeadlineExceeded, ResourceExhausted, Aborted,
//     Canceled), a panic, or a reply above idempotency.WithMaxResponse
//     releases the key instead of recording it, so a retry runs again.
//   - When the store fails, calls fail with Unavailable, or run without
//     deduplication with idempotency.WithFailOpen.
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
			reply, callErr = handler(ctx, req)
			return encodeOutcome(reply, callErr, g.MaxResponse())
		})
		switch {
		case err == nil && res.Replayed:
			grpc.SetHeader(ctx, metadata.Pairs(ReplayedMetadata, "true"))
			return decodeOutcome(res.Response)
		case err == nil:
			return reply, callErr
		case errors.Is(err, idempotency.ErrInFlight):
			// As the HTTP middleware's Retry-After: 1, so that a client
			// asks again with the key once the first call may be done.
			grpc.SetTrailer(ctx, metadata.Pairs(PushbackTrailer, "1000"))
			return nil, status.Error(codes.Aborted, "resiliencegrpc: a call with this idempotency-key is in flight; retry later")
		case errors.Is(err, idempotency.ErrMismatch):
			return nil, status.Error(codes.FailedPrecondition, "resiliencegrpc: this idempotency-key was used for a different call")
		case errors.Is(err, idempotency.ErrStore):
			return nil, status.Error(codes.Unavailable, "resiliencegrpc: idempotency keys cannot be checked right now; retry later")
		}
		return nil, status.FromContextError(err).Err()
	}
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
		codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Canceled:
		return true
	}
	return false
}

// A recorded outcome: a version byte, a kind byte (0: a reply, 1: a
// status), then for a reply its message's full name (uvarint length) and
// its encoding, for a status the encoding of its google.rpc.Status.
const outcomeVersion = 1

func encodeOutcome(reply any, err error, max int) ([]byte, idempotency.Outcome) {
	if err != nil {
		st := status.Convert(err)
		if serverFailure(st.Code()) {
			return nil, idempotency.Release
		}
		b, merr := proto.Marshal(st.Proto())
		if merr != nil {
			return nil, idempotency.Release
		}
		return append([]byte{outcomeVersion, 1}, b...), idempotency.Record
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
	out := []byte{outcomeVersion, 0}
	out = binary.AppendUvarint(out, uint64(len(name)))
	out = append(out, name...)
	return append(out, b...), idempotency.Record
}

func decodeOutcome(rec []byte) (any, error) {
	bad := status.Error(codes.Unavailable, "resiliencegrpc: the recorded reply could not be read")
	if len(rec) < 2 || rec[0] != outcomeVersion {
		return nil, bad
	}
	if rec[1] == 1 {
		var sp spb.Status
		if err := proto.Unmarshal(rec[2:], &sp); err != nil {
			return nil, bad
		}
		return nil, status.ErrorProto(&sp)
	}
	n, k := binary.Uvarint(rec[2:])
	if k <= 0 || n > uint64(len(rec)-2-k) {
		return nil, bad
	}
	name := protoreflect.FullName(rec[2+k : 2+k+int(n)])
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return nil, status.Error(codes.Internal, fmt.Sprintf("resiliencegrpc: recorded reply type %s is not registered", name))
	}
	msg := mt.New().Interface()
	if err := proto.Unmarshal(rec[2+k+int(n):], msg); err != nil {
		return nil, bad
	}
	return msg, nil
}
