module github.com/resilience-go/resilience

go 1.26.0

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	golang.org/x/net v0.60.0
)

require golang.org/x/text v0.42.0 // indirect
