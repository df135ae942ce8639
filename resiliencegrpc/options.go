package resiliencegrpc

import (
	"context"
	"fmt"
	"strings"

	"github.com/resilience-go/resilience/standard"
)

// DefaultMaxReplayBuffer is how many bytes of a stream's sent messages a
// [Client] keeps by default to replay them on a new attempt.
const DefaultMaxReplayBuffer = 1 << 20

// An Option configures a [Client].
type Option interface{ apply(*config) }

type config struct {
	methods      map[string]bool // full methods, and "/service/*" for every method of a service
	idempotentIf func(ctx context.Context, fullMethod string) bool
	maxReplay    int
	pipeline     []standard.Option // Standard only
	hasPipeline  bool
}

func defaultConfig() config {
	return config{maxReplay: DefaultMaxReplayBuffer}
}

type idempotentMethodsOption []string

func (o idempotentMethodsOption) apply(c *config) {
	for _, m := range o {
		if !validMethod(m) {
			panic(fmt.Sprintf("resiliencegrpc: WithIdempotentMethods: %q is not a full method name (\"/package.Service/Method\" or \"/package.Service/*\")", m))
		}
		if c.methods == nil {
			c.methods = make(map[string]bool)
		}
		c.methods[m] = true
	}
}

// WithIdempotentMethods declares methods safe to send more than once, by
// full name ("/package.Service/Method"); "/package.Service/*" names every
// method of a service. Only idempotent calls are retried: use with care,
// since a retried call that is not idempotent can, for example, charge a
// customer twice. NewClient panics, and Standard returns an error, if a name is malformed.
func WithIdempotentMethods(fullMethods ...string) Option {
	return idempotentMethodsOption(fullMethods)
}

type idempotentIfOption func(ctx context.Context, fullMethod string) bool

func (o idempotentIfOption) apply(c *config) {
	if o == nil {
		panic("resiliencegrpc: WithIdempotentIf: f is nil")
	}
	c.idempotentIf = o
}

// WithIdempotentIf declares calls safe to send more than once by a
// function of the call's context (its outgoing metadata, for example) and
// full method name. It adds to [WithIdempotentMethods]: a call is
// idempotent if either says so. f runs once per call, on the calling
// goroutine, and must be safe for concurrent use. NewClient panics
// (Standard returns an error) if f is nil.
func WithIdempotentIf(f func(ctx context.Context, fullMethod string) bool) Option {
	return idempotentIfOption(f)
}

type maxReplayOption int

func (o maxReplayOption) apply(c *config) {
	if o < 0 {
		panic(fmt.Sprintf("resiliencegrpc: WithMaxReplayBuffer: n must not be negative, got %d", int(o)))
	}
	c.maxReplay = int(o)
}

// WithMaxReplayBuffer bounds how many bytes of the messages sent on an
// idempotent stream are kept, until the stream commits, to replay them on
// a new attempt. Each message counts its size in the protobuf wire format
// (the length of a []byte message) plus [ReplayOverhead]; a message of any
// other type cannot be sized and exceeds every bound. A stream that sends
// more than n bytes before committing is not retried. The default is
// [DefaultMaxReplayBuffer] (1 MiB); 0 keeps nothing, so a stream is retried
// only if it failed before its first message was sent. NewClient panics
// (Standard returns an error) if n is negative.
func WithMaxReplayBuffer(n int) Option { return maxReplayOption(n) }

type pipelineOption []standard.Option

func (o pipelineOption) apply(c *config) {
	c.pipeline = append(c.pipeline, o...)
	c.hasPipeline = true
}

// WithPipeline passes options to the standard pipeline that [Standard]
// builds (standard.New): timeouts, retries, breaker, bulkhead, rate
// limit. Only for Standard: NewClient, which takes a policy of its own,
// panics if it is given.
func WithPipeline(opts ...standard.Option) Option { return pipelineOption(opts) }

// validMethod reports whether m looks like "/service/method" or
// "/service/*".
func validMethod(m string) bool {
	if !strings.HasPrefix(m, "/") {
		return false
	}
	svc, meth, ok := strings.Cut(m[1:], "/")
	return ok && svc != "" && meth != "" && !strings.Contains(meth, "/")
}
