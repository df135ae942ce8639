package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDashboardAndRulesAgainstPrometheus checks the shipped Grafana
// dashboard (docs/grafana) and Prometheus rules (docs/prometheus) against a
// real Prometheus: promtool checks and unit-tests the rules, then a
// Prometheus with the rules loaded scrapes this example every second while
// it runs, and every panel's query and every recording rule must return
// data, every rule must evaluate without error.
//
// It needs the prometheus and promtool commands (Debian's prometheus
// package; .ci/run installs it). Without them it is skipped, except under
// CI=true, where it fails.
func TestDashboardAndRulesAgainstPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the example and a Prometheus for about 20s")
	}
	prom, err1 := exec.LookPath("prometheus")
	promtool, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus and promtool are needed under CI=true (apt-get install prometheus)")
		}
		t.Skip("prometheus or promtool not installed")
	}
	rulesDir, err := filepath.Abs("../../docs/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yml"}, {"test", "rules", "rules_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = rulesDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	exprs := panelQueries(t, "../../docs/grafana/resilience.json")

	// The example, its metrics on a free loopback port.
	exampleAddr := freeAddr(t)
	const runFor = 25 * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := run(runFor, 100, exampleAddr)
		done <- err
	}()
	defer func() {
		if err := <-done; err != nil {
			t.Errorf("example: %v", err)
		}
	}()

	// Prometheus, scraping it every second, with the rules.
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: example
    static_configs:
      - targets: [%q]
`, filepath.Join(rulesDir, "rules.yml"), exampleAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	}()

	// Every panel and every recording rule must return data before the
	// example ends; the rules must all be healthy.
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	api := "http://" + promAddr + "/api/v1/"
	var missing []string
	for {
		missing = missing[:0]
		records, unhealthy := rules(ctx, api)
		queries := append(append([]string(nil), exprs...), records...)
		if len(records) == 0 {
			missing = append(missing, "(no recording rule loaded yet)")
		}
		for _, q := range queries {
			if n, err := query(ctx, api, q); err != nil || n == 0 {
				missing = append(missing, fmt.Sprintf("%s (%d series, %v)", q, n, err))
			}
		}
		missing = append(missing, unhealthy...)
		if len(missing) == 0 {
			t.Logf("%d panel queries and %d recording rules returned data", len(exprs), len(records))
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no data before the example ended for:\n%s", strings.Join(missing, "\n"))
		case <-time.After(time.Second):
		}
	}
}

// panelQueries returns the dashboard's queries, its variables replaced as
// Grafana would: every policy name, a rate interval of 30s.
func panelQueries(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r := strings.NewReplacer("$__rate_interval", "30s", "$name", ".*")
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, r.Replace(tg.Expr))
		}
	}
	return exprs
}

// rules returns the names of the loaded recording rules, and a line for
// each rule that is not healthy.
func rules(ctx context.Context, api string) (records, unhealthy []string) {
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Type, Health, LastError string
				}
			}
		}
	}
	if err := get(ctx, api+"rules", &r); err != nil {
		return nil, []string{"rules: " + err.Error()}
	}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			if rule.Type == "recording" {
				records = append(records, rule.Name)
			}
			if rule.Health != "ok" {
				unhealthy = append(unhealthy, fmt.Sprintf("rule %s: health %q %s", rule.Name, rule.Health, rule.LastError))
			}
		}
	}
	return records, unhealthy
}

// query returns the number of series an instant query returns.
func query(ctx context.Context, api, q string) (int, error) {
	var r struct {
		Status string
		Error  string
		Data   struct{ Result []json.RawMessage }
	}
	if err := get(ctx, api+"query?query="+url.QueryEscape(q), &r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s: %s", r.Status, r.Error)
	}
	return len(r.Data.Result), nil
}

func get(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
