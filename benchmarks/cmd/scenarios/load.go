package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// callerDeadline bounds every logical call, from the time it was due.
const callerDeadline = 3 * time.Second

// A call is one logical call as the caller saw it.
type call struct {
	due      time.Duration // when it was scheduled, from the start of the load
	latency  time.Duration // from due to the end of reading the body
	ok       bool          // 200 and the whole body read
	attempts int           // requests the stack sent through the base transport
}

// A result is one run of one stack through one scenario.
type result struct {
	calls          []call
	up             upstreamStats
	breakerChanges int // -1: the stack has no breaker
	elapsed        time.Duration
}

type attemptsKey struct{}

// counting counts, in the call's context, every request a stack sends.
type counting struct{ next http.RoundTripper }

func (c counting) RoundTrip(req *http.Request) (*http.Response, error) {
	if n, ok := req.Context().Value(attemptsKey{}).(*atomic.Int32); ok {
		n.Add(1)
	}
	return c.next.RoundTrip(req)
}

// runOne starts a fresh upstream process for sc, drives rate calls per
// second through a fresh instance of st for the scenario's length, open
// loop, and returns what both sides saw.
func runOne(sc scenario, st stack, rate float64, seed uint64) (*result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, upstreamFlag)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close()
		cmd.Wait() // after the stats were read, or once the upstream gives up
	}()
	out := bufio.NewReader(stdout)
	spec, _ := json.Marshal(upstreamSpec{Scenario: sc, Seed: seed, ClientPID: os.Getpid()})
	if _, err := fmt.Fprintf(stdin, "%s\n", spec); err != nil {
		return nil, err
	}
	var hello upstreamHello
	if err := readJSONLine(out, &hello); err != nil {
		return nil, fmt.Errorf("upstream hello: %w", err)
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	obs := &observer{}
	rt, err := st.build(counting{base}, obs)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", st.name, err)
	}
	client := &http.Client{Transport: rt}
	url := "http://" + hello.Addr + "/"

	n := int(rate * sc.total().Seconds())
	calls := make([]call, n)
	time.Sleep(time.Until(time.Unix(0, hello.Start)))
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		due := time.Duration(float64(i) / rate * float64(time.Second))
		if d := due - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		// Open loop: a call starts when it is due, however many are
		// still running. Calls that fell due while this process was
		// stopped start at once when it continues, as the requests a
		// stalled service accepted would.
		wg.Go(func() { calls[i] = doCall(client, url, start, due) })
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Until(start.Add(sc.total() + callerDeadline + 10*time.Second))):
		return nil, fmt.Errorf("stack %s, scenario %s: calls still running long after their deadline", st.name, sc.Name)
	}
	elapsed := time.Since(start)

	fmt.Fprintln(stdin, "done")
	var stats upstreamStats
	if err := readJSONLine(out, &stats); err != nil {
		return nil, fmt.Errorf("upstream stats: %w", err)
	}
	if stats.Err != "" {
		return nil, fmt.Errorf("upstream: %s", stats.Err)
	}
	r := &result{calls: calls, up: stats, breakerChanges: -1, elapsed: elapsed}
	if st.breaker {
		r.breakerChanges = int(obs.breakerChanges.Load())
	}
	return r, nil
}

func doCall(client *http.Client, url string, start time.Time, due time.Duration) call {
	var attempts atomic.Int32
	ctx := context.WithValue(context.Background(), attemptsKey{}, &attempts)
	ctx, cancel := context.WithDeadline(ctx, start.Add(due+callerDeadline))
	defer cancel()
	c := call{due: due}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			c.ok = err == nil && resp.StatusCode == http.StatusOK
		}
	}
	c.latency = time.Since(start) - due
	c.attempts = int(attempts.Load())
	return c
}

func readJSONLine(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}
