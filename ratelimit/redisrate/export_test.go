package redisrate

import "time"

// SetNow sets the clock l reads (probes, heartbeats, leases and the
// decisions it takes without Redis); Redis keeps its own.
func SetNow(l *Limiter, now func() time.Time) { l.now = now }

// HasShare reports whether l holds a Degrade share.
func HasShare(l *Limiter) bool { return l.local.Load() != nil }
