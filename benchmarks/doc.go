// Package benchmarks measures resilience side by side with its peers and
// runs behaviour scenarios against real loopback servers. It is a separate
// module so that the peers never enter the library's go.mod.
//
// Run the benchmarks with
//
//	go test -run '^$' -bench . -benchmem -count 6 | tee new.txt && benchstat new.txt
//
// and the scenarios with go test -v -run Scenario. Results and caveats are in
// docs/benchmarks.md at the root of the repository.
package benchmarks
