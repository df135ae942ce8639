package telemetry

// The pushback gate's names, kept apart from the other policies' so that
// the gate's additions stand on their own.
const (
	// KindPushback is the resilience.policy value of a pushback gate.
	KindPushback = "pushback"

	// PushbackWaitName is the histogram of how long calls waited at a
	// pushback gate before going through.
	PushbackWaitName = "resilience.pushback.wait.duration"

	// Pushback gate events, with EventClosed ("closed": the dependency
	// asked for a pause and the gate closed) and EventRejected
	// ("rejected": a call turned away).
	EventHeld     = "held"     // a call waits at the closed gate
	EventReopened = "reopened" // the gate opened again for every call
)
