package telemetry_test

import (
	"context"
	"testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

func TestCallAttrsIncoming(t *testing.T) {
	call := resilience.Call{Target: "203.0.113.7", Method: "/users.v1.Users/Get"}
	tests := []struct {
		name        string
		otherMethod bool
		want        string
	}{
		{"registered method", false, "rpc.method=users.v1.Users/Get"},
		{"unknown-service handler", true, "rpc.method=_OTHER"},
	}
	for _, tt := range tests {
		ctx := resilience.WithCall(telemetry.Incoming(context.Background(), tt.otherMethod), call)
		if got := telemetrytest.KVs(telemetry.CallAttrs(ctx, nil)...); got != tt.want {
			t.Errorf("%s: CallAttrs = %q, want %q (never the client's address)", tt.name, got, tt.want)
		}
	}
}
