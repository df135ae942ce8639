package breaker

import (
	"sync"
	"time"
)

// machine is a breaker's state: closed, open or half-open, the outcomes
// counted while closed, and the probes in flight while half-open.
//
// A call asks to go through with allow, which returns a ticket, and reports
// its outcome later with done(ticket, ...). The ticket is a plain value, so
// a call that holds its result past the operation (a response body) can
// report when the result ends without any allocation on the common path.
// An outcome whose ticket is from an earlier generation (the state changed
// since the call began) is ignored.
type machine struct {
	probes  uint32        // half-open: probes let through at once, and successes that close
	open    time.Duration // how long the breaker stays open
	bucket  time.Duration // width of a window slot; 0: no window (consecutive mode)
	trip    func(c counts) bool
	changed func(from, to State) // called with mu held: it must only record

	mu       sync.Mutex // guards the fields below; never held while calling user code
	state    State
	gen      uint64    // bumped on every state change
	since    time.Time // when the current generation began
	expiry   time.Time // open: the next probe may go strictly after it
	inFlight uint32    // half-open: probes let through, not yet done
	okProbes uint32    // half-open: probes that succeeded
	slots    []counts  // closed, ratio mode: a ring of window slots
	age      int64     // index of the newest slot since `since`
	sum      counts    // closed: what the window (or generation) holds
	run      uint32    // closed: consecutive failures
}

// counts are the outcomes counted while closed.
type counts struct {
	ok, failed uint32
}

// ticket identifies a call let through, for done.
type ticket struct {
	gen  uint64
	slot int64
}

// Outcomes for done.
const (
	excluded = iota
	success
	failure
)

func newMachine(c *config, changed func(from, to State)) *machine {
	m := &machine{
		probes:  uint32(c.probes),
		open:    c.open,
		changed: changed,
		since:   time.Now(),
	}
	switch c.mode {
	case modeConsecutive:
		n := uint32(c.consecutive)
		m.trip = func(cs counts) bool { return cs.failed > 0 && m.run >= n }
	default:
		m.bucket = c.bucket
		m.slots = make([]counts, max(int(c.window/c.bucket), 1))
		ratio, minCalls := c.ratio, uint32(c.minCalls)
		m.trip = func(cs counts) bool {
			if m.run >= minCalls {
				// The last minCalls calls all failed: an outage,
				// whatever successes from before it the window holds.
				return true
			}
			total := cs.ok + cs.failed
			return total >= minCalls && float64(cs.failed) >= ratio*float64(total)
		}
	}
	return m
}

// allow lets a call through, or reports why not: open (with the time the
// next probe may go) or half-open with every probe in flight.
func (m *machine) allow(now time.Time) (t ticket, st State, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	switch m.state {
	case Open:
		return ticket{}, Open, false
	case HalfOpen:
		if m.inFlight >= m.probes {
			return ticket{}, HalfOpen, false
		}
		m.inFlight++
	}
	return ticket{gen: m.gen, slot: m.age}, m.state, true
}

// done reports the outcome of a call let through with t.
func (m *machine) done(t ticket, outcome int, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	if t.gen != m.gen {
		return // the state changed since: the outcome is stale
	}
	switch m.state {
	case Closed:
		if outcome == excluded {
			return
		}
		var slot *counts
		if m.slots != nil {
			if m.age-t.slot >= int64(len(m.slots)) {
				return // its slot left the window
			}
			slot = &m.slots[t.slot%int64(len(m.slots))]
		}
		if outcome == success {
			m.run = 0
			m.sum.ok++
			if slot != nil {
				slot.ok++
			}
			return
		}
		m.run++
		m.sum.failed++
		if slot != nil {
			slot.failed++
		}
		if m.trip(m.sum) {
			m.set(Open, now)
		}
	case HalfOpen:
		switch outcome {
		case excluded:
			m.inFlight--
		case success:
			m.okProbes++
			if m.okProbes >= m.probes {
				m.set(Closed, now)
			}
		default:
			m.set(Open, now)
		}
	}
}

// current returns the state now.
func (m *machine) current(now time.Time) State {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	return m.state
}

// advance moves the breaker to now: an open breaker whose time is up turns
// half-open, and a closed breaker's window drops the slots that left it.
func (m *machine) advance(now time.Time) {
	switch m.state {
	case Open:
		if m.expiry.Before(now) {
			m.set(HalfOpen, now)
		}
	case Closed:
		if m.slots == nil {
			return
		}
		age := int64(now.Sub(m.since) / m.bucket)
		if age <= m.age {
			return
		}
		n := int64(len(m.slots))
		for a := max(m.age+1, age-n+1); a <= age; a++ {
			s := &m.slots[a%n]
			m.sum.ok -= s.ok
			m.sum.failed -= s.failed
			*s = counts{}
		}
		m.age = age
	}
}

// set changes the state and starts a new generation with nothing counted.
func (m *machine) set(to State, now time.Time) {
	from := m.state
	m.state = to
	m.gen++
	m.since, m.age = now, 0
	m.sum, m.run = counts{}, 0
	clear(m.slots)
	m.inFlight, m.okProbes = 0, 0
	if to == Open {
		m.expiry = now.Add(m.open)
	}
	m.changed(from, to)
}
