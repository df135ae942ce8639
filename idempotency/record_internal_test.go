package idempotency

import (
	"encoding/binary"
	"net/http"
	"testing"
)

// TestVersion1RecordsAreRead: records written before trailers were
// recorded (version 1, kept up to a TTL across a deploy) are still
// replayed.
func TestVersion1RecordsAreRead(t *testing.T) {
	b := []byte{1}
	b = binary.AppendUvarint(b, 201)
	b = appendFields(b, http.Header{"Location": {"/orders/1"}})
	b = appendString(b, "body")
	status, h, body, trailer, err := decodeResponse(b)
	if err != nil || status != 201 || h.Get("Location") != "/orders/1" || string(body) != "body" || len(trailer) != 0 {
		t.Fatalf("got %d %v %q %v, %v; want the version 1 record", status, h, body, trailer, err)
	}
	if _, _, _, _, err := decodeResponse(append(b, 0)); err == nil {
		t.Error("a version 1 record with trailing bytes was read")
	}
}
