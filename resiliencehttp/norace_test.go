//go:build !race

package resiliencehttp_test

const raceEnabled = false
