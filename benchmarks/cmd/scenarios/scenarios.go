package main

import (
	"fmt"
	"strings"
	"time"
)

// Kinds of fault the upstream can play.
const (
	faultStatus   = "status"   // a fraction of requests answers Status
	faultSlow     = "slow"     // a fraction of requests answers 200 after Delay
	faultRefused  = "refused"  // nothing listens: connections are refused
	faultStarved  = "starved"  // the upstream is healthy; the client process is stopped
	faultThrottle = "throttle" // a fraction of requests answers 429 with Retry-After
	faultOverload = "overload" // a naive FIFO upstream loses workers (package fifo)
)

// A scenario is a healthy phase, a fault, and a healthy phase again, as
// the upstream plays it. It is sent to the upstream process as JSON.
type scenario struct {
	Name     string        `json:"name"`
	Title    string        `json:"title"`
	Kind     string        `json:"kind"`
	Pre      time.Duration `json:"pre"`
	Fault    time.Duration `json:"fault"`
	Post     time.Duration `json:"post"`
	Fraction float64       `json:"fraction,omitempty"` // share of requests affected (status, slow, throttle)
	Status   int           `json:"status,omitempty"`
	Delay    time.Duration `json:"delay,omitempty"` // slow: the delay; overload: the service time
	// Overload: the naive upstream's workers, when healthy and during the
	// fault; every request, whenever it arrives, waits its turn in one FIFO
	// queue and takes Delay of a worker's time.
	Workers      int `json:"workers,omitempty"`
	FaultWorkers int `json:"fault_workers,omitempty"`
}

// total is the length of the scheduled load.
func (s scenario) total() time.Duration { return s.Pre + s.Fault + s.Post }

// faultEnd is when the fault ends, from the start of the load.
func (s scenario) faultEnd() time.Duration { return s.Pre + s.Fault }

// Phases around every fault: long enough before it for connections and
// breakers to settle, and after it for a 250ms-bucket recovery figure.
const (
	healthyBefore = 1500 * time.Millisecond
	healthyAfter  = 2500 * time.Millisecond
	// overloadBefore is the healthy phase before the client overload:
	// an adaptive limit starts at its initial value and decays toward the
	// demand it sees within a few seconds, as it has long done in a client
	// that has been running (cmd/overload gives it as long).
	overloadBefore = 4 * time.Second
)

// scenarios is the suite, in the order it runs.
var scenarios = []scenario{
	{Name: "outage-503", Title: "outage: every request answers 503 for 4.5s",
		Kind: faultStatus, Fault: 4500 * time.Millisecond, Fraction: 1, Status: 503},
	{Name: "outage-refused", Title: "outage: connections refused for 4.5s (listener closed, open connections closed, then reopened on the same port)",
		Kind: faultRefused, Fault: 4500 * time.Millisecond},
	{Name: "brownout", Title: "brownout: 30% of requests answer 503 for 8s",
		Kind: faultStatus, Fault: 8 * time.Second, Fraction: 0.3, Status: 503},
	{Name: "slow-tail", Title: "slow tail: 20% of requests take 2s for 6s",
		Kind: faultSlow, Fault: 6 * time.Second, Fraction: 0.2, Delay: 2 * time.Second},
	{Name: "throttling", Title: "throttling: every request answers 429 with Retry-After: 1 for 4s",
		Kind: faultThrottle, Fault: 4 * time.Second, Fraction: 1},
	{Name: "partial-throttle", Title: "partial throttle: 2% of requests answer 429 with Retry-After: 1 for 8s (one tenant's or one endpoint's quota)",
		Kind: faultThrottle, Fault: 8 * time.Second, Fraction: 0.02},
	{Name: "starved-client", Title: "starved client: the upstream stays healthy, the client process is stopped for 1.2s (SIGSTOP, SIGCONT)",
		Kind: faultStarved, Fault: 1200 * time.Millisecond},
	{Name: "client-overload", Title: "client overload: a naive FIFO upstream (20ms a request, no cancellation checks) drops from 8 workers (400/s) to 1 (50/s, a quarter of 200 calls/s) for 8s",
		Kind: faultOverload, Pre: overloadBefore, Fault: 8 * time.Second, Delay: 20 * time.Millisecond, Workers: 8, FaultWorkers: 1},
}

func init() {
	for i := range scenarios {
		if scenarios[i].Pre == 0 {
			scenarios[i].Pre = healthyBefore
		}
		scenarios[i].Post = healthyAfter
	}
}

// smokeScenario is the short outage CI runs.
func smokeScenario() scenario {
	s := scenarios[0]
	s.Title = "smoke: every request answers 503 for 1s"
	s.Pre, s.Fault, s.Post = 500*time.Millisecond, time.Second, time.Second
	return s
}

// pickScenarios returns the scenarios named in a comma-separated list, in
// the suite's order ("" or "all" for every one).
func pickScenarios(list string) ([]scenario, error) {
	if list == "" || list == "all" {
		return scenarios, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []scenario
	for _, s := range scenarios {
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, scenarioNames())
	}
	return out, nil
}

func scenarioNames() string {
	var ns []string
	for _, s := range scenarios {
		ns = append(ns, s.Name)
	}
	return strings.Join(ns, ", ")
}
