//go:build race

package standard_test

// raceEnabled reports that the race detector is on: sync.Pool then drops
// items at random, and allocation counts are not the program's.
const raceEnabled = true
