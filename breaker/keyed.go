package breaker

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/keyed"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Keyed is a [resilience.Policy] that keeps one [Breaker] per key, by
// default per target host, so that one failing dependency does not turn
// away calls to the others. Build it with [NewKeyed]; it is safe for
// concurrent use. The zero Keyed is not usable.
//
// Its breakers live in a bounded registry: at most [WithMaxKeys] keys (plus
// those with calls in flight), and a key idle for [WithIdleTimeout] is
// forgotten. A forgotten breaker starts again closed.
type Keyed struct {
	c      config
	key    func(context.Context) string
	reg    *keyed.Registry[*Breaker]
	states *[3]attribute.Set // for custom keys: the sets of the per-state counts
}

// NewKeyed returns a keyed breaker. opts configure every breaker it makes,
// each named by its key, and the keying itself ([WithKey], [WithMaxKeys],
// [WithIdleTimeout]). It panics, naming the option, if an option's value is
// invalid.
//
// Its telemetry is named by [WithName] and shared by its breakers. Keyed by
// target (the default), resilience.breaker.state reports each breaker with
// its server.address; with [WithKey], whose keys may be anything, it
// reports how many breakers are in each state instead. A key's telemetry
// goes with it when the key is evicted.
func NewKeyed(opts ...Option) *Keyed {
	k := &Keyed{c: defaultConfig()}
	for _, o := range opts {
		o.apply(&k.c)
	}
	k.c.validate(true)
	k.key = k.c.key
	k.c.tel.Name = k.c.name
	tel := telemetry.New(telemetry.KindBreaker, k.c.tel)
	if k.aggregate(tel) {
		k.states = stateSets(tel, "")
		k.reg = keyed.New(k.c.maxKeys, k.c.idle, func(key string) *Breaker { return newBreaker(&k.c, key, tel, nil) })
	} else {
		k.reg = keyed.New(k.c.maxKeys, k.c.idle, func(key string) *Breaker {
			return newBreaker(&k.c, key, tel, stateSets(tel, key))
		})
	}
	observeStates(tel, k, func(k *Keyed, o metric.Observer, g metric.Int64Observable) { k.observe(o, g) })
	return k
}

// aggregate reports whether the keyed breakers' states are reported as
// counts per state rather than one series per breaker: when keys are not
// targets (no key may become an attribute value), or when server.address is
// left off (WithoutServerAddress), which keeps the series bounded however
// many hosts there are.
func (k *Keyed) aggregate(tel *telemetry.Policy) bool {
	return k.c.customKey || tel.ServerAddressOff()
}

// Do runs op under the breaker for the call's key; see [Breaker.Do].
func (k *Keyed) Do(ctx context.Context, op func(context.Context) error) error {
	return k.reg.Do(ctx, k.key(ctx), op, (*Breaker).Do)
}

// State returns the state of the breaker for key; Closed if there is none.
func (k *Keyed) State(key string) State {
	if b, ok := k.reg.Peek(key); ok {
		return b.State()
	}
	return Closed
}

// Window returns the rolling window of each breaker; see [Breaker.Window].
func (k *Keyed) Window() time.Duration { return k.c.window }

// Len returns the number of keys that have a breaker.
func (k *Keyed) Len() int { return k.reg.Len() }
