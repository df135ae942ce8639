package redisrate

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// maxBatch bounds the scripts sent in one pipeline.
const maxBatch = 128

// batcher sends the scripts of concurrent decisions to Redis together, in
// one pipeline, by group commit: the first decision to arrive while no
// pipeline is in flight leads, sends every decision queued so far, and hands
// the lead to the first one queued meanwhile. Each decision is still its
// own script, run atomically by Redis; only the round trips are shared. A
// lone decision runs its script directly, as without a batcher.
type batcher struct {
	l *Limiter
	p interface{ Pipeline() redis.Pipeliner }

	mu      sync.Mutex // guards the fields below
	queue   []*pending
	leading bool // a leader is sending or about to send a batch
}

// pending is one decision waiting for its script's answer.
type pending struct {
	key string
	n   int64
	g   grant
	err error
	// ch receives false when g and err are set, or true when the
	// decision must lead the next batch.
	ch chan bool
}

// take runs the GCRA script for up to n requests of key, batched with the
// decisions running concurrently. It waits for the answer whatever ctx
// does: the wait is bounded by the client's timeouts, and a batch must not
// be abandoned by the decision leading it.
func (b *batcher) take(ctx context.Context, key string, n int64) (grant, error) {
	b.mu.Lock()
	if !b.leading {
		b.leading = true
		b.mu.Unlock()
		g, err := b.l.takeOne(ctx, key, n)
		b.handOff()
		return g, err
	}
	p := &pending{key: key, n: n, ch: make(chan bool, 1)}
	b.queue = append(b.queue, p)
	b.mu.Unlock()
	if lead := <-p.ch; !lead {
		return p.g, p.err
	}
	// This decision leads: send the queue, itself included.
	b.mu.Lock()
	batch := b.queue[:min(len(b.queue), maxBatch)]
	b.queue = b.queue[len(batch):]
	b.mu.Unlock()
	b.run(context.WithoutCancel(ctx), batch)
	b.handOff()
	return p.g, p.err
}

// handOff ends a leader's turn: the first decision queued meanwhile leads
// next, or no one does.
func (b *batcher) handOff() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.leading = false
		return
	}
	// The first queued leads: it is at the front of the batch it sends.
	b.queue[0].ch <- true
}

// run sends batch in one pipeline and gives each decision its answer. The
// leader's own decision is in batch and is answered like the others, but
// not signalled: it is the caller.
func (b *batcher) run(ctx context.Context, batch []*pending) {
	leader := batch[0]
	if len(batch) == 1 {
		leader.g, leader.err = b.l.takeOne(ctx, leader.key, leader.n)
		return
	}
	cmds := b.send(ctx, batch, false)
	// Scripts Redis did not know (after SCRIPT FLUSH or a restart) are
	// sent again with their source; the others ran, and must not run twice.
	var again []*pending
	var at []int
	for i, c := range cmds {
		if err := c.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			again, at = append(again, batch[i]), append(at, i)
		}
	}
	if len(again) > 0 {
		for j, c := range b.send(ctx, again, true) {
			cmds[at[j]] = c
		}
	}
	for i, p := range batch {
		p.g, p.err = parseGrant(cmds[i])
		if i > 0 {
			p.ch <- false
		}
	}
}

// send runs the scripts of batch in one pipeline, by hash, or with their
// source when Redis does not know the script (after SCRIPT FLUSH or a
// restart).
func (b *batcher) send(ctx context.Context, batch []*pending, source bool) []*redis.Cmd {
	pipe := b.p.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, p := range batch {
		keys := []string{b.l.redisKey(p.key)}
		if source {
			cmds[i] = gcra.Eval(ctx, pipe, keys, b.l.args[0], b.l.args[1], p.n)
		} else {
			cmds[i] = gcra.EvalSha(ctx, pipe, keys, b.l.args[0], b.l.args[1], p.n)
		}
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return cmds
}
