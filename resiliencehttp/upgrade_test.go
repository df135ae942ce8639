package resiliencehttp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// upgradeRequest returns a request to switch srv's connection to the echo
// protocol.
func upgradeRequest(t *testing.T, srv *httptest.Server) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	return req
}

// echoUpgradeServer switches a request with "Upgrade: echo" to a protocol
// that answers each line with "echo: " and the line, over the hijacked
// connection, as a WebSocket server switches to its own. Other requests
// get a plain 200.
// Each upgraded connection the client closes is sent on closed, if not nil.
func echoUpgradeServer(t *testing.T, closed ...chan<- struct{}) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			fmt.Fprint(w, "plain")
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil { // the client closed the connection
				for _, c := range closed {
					c <- struct{}{}
				}
				return
			}
			rw.WriteString("echo: " + line)
			rw.Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A 101 Switching Protocols response reaches the caller with the body
// net/http returned, writable, as a WebSocket client needs it: the caller
// writes and reads over the upgraded connection through the standard
// pipeline. Neither timeout bounds the connection, and it holds no
// bulkhead slot: the call ended with the upgrade. Nor does the request's
// context, canceled after the switch. With hedging, too, where
// the attempt that switched runs beside others.
func TestUpgradedConnectionIsTheCallersThroughStandard(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []standard.Option
	}{
		{"retry", nil},
		{"hedging", []standard.Option{standard.WithHedging(hedge.WithDelay(time.Second))}},
	} {
		t.Run(tt.name, func(t *testing.T) { testUpgraded(t, tt.opts) })
	}
}

func testUpgraded(t *testing.T, opts []standard.Option) {
	srv := echoUpgradeServer(t)
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	const total = 300 * time.Millisecond
	tr, err := resiliencehttp.Standard(base, append([]standard.Option{
		standard.WithTotalTimeout(total),
		standard.WithAttemptTimeout(200 * time.Millisecond),
		standard.WithBulkhead(1, bulkhead.WithMaxWait(time.Millisecond)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := client.Do(upgradeRequest(t, srv).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("the 101 response's body is a %T, not writable: the upgraded connection is lost", resp.Body)
	}
	if _, ok := resp.Body.(interface{ CloseWrite() error }); !ok {
		t.Errorf("the 101 response's body is a %T without CloseWrite: not the body net/http returned", resp.Body)
	}
	r := bufio.NewReader(conn)
	echo := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(conn, msg+"\n"); err != nil {
			t.Fatalf("writing %q over the upgraded connection: %v", msg, err)
		}
		got, err := r.ReadString('\n')
		if want := "echo: " + msg + "\n"; got != want || err != nil {
			t.Fatalf("read %q, %v over the upgraded connection; want %q", got, err, want)
		}
	}
	echo("hello")

	// The bulkhead's one slot is free while the connection stays open.
	plain, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("a request beside the upgraded connection: %v (its bulkhead slot still taken?)", err)
	}
	body, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	if string(body) != "plain" {
		t.Fatalf("a request beside the upgraded connection got %q", body)
	}

	// Well past both timeouts, and with the request's context canceled,
	// the connection still carries messages.
	cancel()
	time.Sleep(2 * total)
	echo("still there")
	if err := conn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := io.WriteString(conn, "after close\n"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("a write after Close: got %v, want a closed connection's error", err)
	}
}

// An attempt that switched protocols and that a policy then throws away
// has its connection closed, not leaked; the call's own upgraded
// connection is the caller's.
func TestDiscardedUpgradeIsClosed(t *testing.T) {
	closed := make(chan struct{}, 2)
	srv := echoUpgradeServer(t, closed)
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	// A policy that turns the first attempt's success down, as a
	// validating policy might: the retry discards it.
	refuseFirst := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		err := op(ctx)
		if err == nil && resilience.AttemptNumber(ctx) == 1 {
			return errors.New("refused after the switch")
		}
		return err
	})
	tr := resiliencehttp.NewTransport(base, retry.New(retry.WithBackoff(time.Millisecond, time.Millisecond)), refuseFirst)
	resp, err := (&http.Client{Transport: tr}).Do(upgradeRequest(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the discarded attempt's upgraded connection was not closed")
	}
	conn := resp.Body.(io.ReadWriteCloser)
	if _, err := io.WriteString(conn, "kept\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(conn).ReadString('\n'); got != "echo: kept\n" || err != nil {
		t.Fatalf("read %q, %v over the kept connection", got, err)
	}
}
