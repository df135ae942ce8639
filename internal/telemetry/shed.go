package telemetry

import "go.opentelemetry.io/otel/attribute"

// The load shedder's names (package shed), kept apart from the other
// policies' so that its additions stand on their own.
const (
	// KindShed is the resilience.policy value of a load shedder.
	KindShed = "shed"

	// ShedWaitName is the histogram of how long admitted requests waited
	// in a shedder's queue.
	ShedWaitName = "resilience.shed.wait.duration"
	// ShedInFlightName is the observable count of requests a shedder
	// admitted that have not finished.
	ShedInFlightName = "resilience.shed.in_flight"
	// ShedQueuedName is the observable count of requests waiting in a
	// shedder's queue.
	ShedQueuedName = "resilience.shed.queued"

	// Shedder events, with EventRejected ("rejected": a request shed,
	// with resilience.reason and resilience.priority).
	EventQueued = "queued" // a request found no free slot and waits in the queue

	// Reasons of a shed request (resilience.reason).
	ShedReasonLimit        = "limit"         // at the limit, and no queue
	ShedReasonQueueFull    = "queue_full"    // the queue full of requests of its priority or higher
	ShedReasonQueueTimeout = "queue_timeout" // no slot within the maximum wait
	ShedReasonPriority     = "priority"      // pushed out of the queue by a request of higher priority
	ShedReasonDraining     = "draining"      // the shedder is draining for shutdown
	ShedReasonCanceled     = "canceled"      // the request's context ended while it waited
)

// PriorityKey is the attribute of a request's priority on the shedder's
// events: critical, default or sheddable.
const PriorityKey = attribute.Key("resilience.priority")
