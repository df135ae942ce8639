package resiliencehttp

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestReadProblem(t *testing.T) {
	tests := []struct {
		name, ctype, body   string
		length              int64 // -1: the body's length
		title, detail, text string
	}{
		{"problem", "application/problem+json", `{"title":"Conflict","detail":"in flight"}`, -1, "Conflict", "in flight", "resiliencehttp: 409 Conflict: in flight"},
		{"own title", "application/problem+json; charset=utf-8", `{"title":"Out of stock","detail":"item 7"}`, -1, "Out of stock", "item 7", "resiliencehttp: 409 Conflict: Out of stock: item 7"},
		{"control characters", "application/problem+json", "{\"detail\":\"a\\nb\\u0007c\"}", -1, "", "abc", "resiliencehttp: 409 Conflict: abc"},
		{"long detail", "application/problem+json", `{"detail":"` + strings.Repeat("x", 1000) + `"}`, -1, "", strings.Repeat("x", maxProblemText) + "…", ""},
		{"not a problem", "application/json", `{"title":"Conflict","detail":"in flight"}`, -1, "", "", "resiliencehttp: 409 Conflict"},
		{"unknown length", "application/problem+json", `{"detail":"in flight"}`, 0, "", "", "resiliencehttp: 409 Conflict"},
		{"too long", "application/problem+json", `{"detail":"` + strings.Repeat("x", MaxProblem) + `"}`, -1, "", "", "resiliencehttp: 409 Conflict"},
		{"malformed", "application/problem+json", `{"detail":`, -1, "", "", "resiliencehttp: 409 Conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.length
			if n < 0 {
				n = int64(len(tt.body))
			}
			resp := &http.Response{StatusCode: 409, Status: "409 Conflict", Header: http.Header{"Content-Type": {tt.ctype}},
				ContentLength: n, Body: io.NopCloser(strings.NewReader(tt.body))}
			title, detail := readProblem(resp)
			if title != tt.title || detail != tt.detail {
				t.Fatalf("got %q, %q; want %q, %q", title, detail, tt.title, tt.detail)
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != tt.body {
				t.Fatalf("the caller reads %q, want the whole body", b)
			}
			if tt.text != "" {
				if got := (&StatusError{Response: resp, Title: title, Detail: detail}).Error(); got != tt.text {
					t.Fatalf("Error() = %q, want %q", got, tt.text)
				}
			}
		})
	}
}
