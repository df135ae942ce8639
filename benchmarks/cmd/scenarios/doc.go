// Command scenarios drives a fixed offered load through several HTTP client
// stacks while a loopback upstream plays a fault, and writes what the
// callers experienced: markdown tables into a generated section of
// docs/benchmarks.md and SVG charts into docs/charts.
//
// Run it inside benchmarks/:
//
//	go run ./cmd/scenarios                    # the whole suite, about 5 minutes
//	go run ./cmd/scenarios -runs 3 -scenarios outage-503,throttling
//	go run ./cmd/scenarios -smoke             # a few seconds, output to a temporary directory
//	go run ./cmd/scenarios -redraw ../docs/charts   # draw the charts again, from their own data, running nothing
//
// Each SVG chart carries the data it shows (the median per bucket and
// stack, as JSON in a metadata element), so that a change of layout is one
// -redraw, not a run of the suite.
//
// # Method
//
// Every run of one stack through one scenario gets a fresh upstream process
// and a fresh client transport. The upstream is this binary re-executed with
// a hidden argument; it listens on 127.0.0.1, announces when the load
// starts, and from then on plays the scenario by its own clock: healthy,
// the fault, healthy again. Faults that are answers (503, 429 with
// Retry-After to every request or to a random 2% of them, a 2s delay) are
// decided from each request's arrival time;
// a refused connection is played by closing the listener and every open
// connection, then listening on the same port again; a starved client is
// played by sending SIGSTOP to the client process and SIGCONT 1.2s later,
// which is what a throttled container or a long pause does to a service
// (the upstream, being another process, keeps running). The upstream
// counts requests per 250ms bucket and the connections it accepts, and
// reports them when the client is done.
//
// The client is open loop: call i is due at i/rate from the start, and
// starts then however many calls are still running; calls that fell due
// while the process was stopped start at once when it continues. Each call
// has a 3s deadline from when it was due, and its latency is measured from
// when it was due, so a stall or a queue counts against it. Each run is
// bounded: rate × length calls, at most 4 attempts each, each within its
// deadline; a run whose calls have not all ended 10s after the last
// deadline fails the program, and an upstream whose client goes away
// continues it and exits.
//
// Stacks are registered in stacks.go: adding one is one entry, and a
// variant of ours is one call of ours with a standard option.
package main
