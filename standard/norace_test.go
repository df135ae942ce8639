//go:build !race

package standard_test

// raceEnabled reports that the race detector is on.
const raceEnabled = false
