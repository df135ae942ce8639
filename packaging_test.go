package resilience_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// heavy names modules that only demos, tests or other adapters need: a
// program that uses the HTTP parts alone must not compile them, and its
// module graph must not carry the demo-only ones.
var heavy = []string{
	"google.golang.org/grpc",
	"github.com/prometheus/",
	"github.com/redis/",
	"go.opentelemetry.io/otel/sdk",
	"go.opentelemetry.io/otel/exporters/",
}

// TestHTTPOnlyProgramCompilesNoHeavyPackage checks, with go list -deps, that
// importing resiliencehttp and standard compiles no gRPC, Prometheus, Redis
// or OTel SDK package.
func TestHTTPOnlyProgramCompilesNoHeavyPackage(t *testing.T) {
	goTool := lookGo(t)
	out, err := exec.Command(goTool, "list", "-deps",
		"github.com/resilience-go/resilience/resiliencehttp",
		"github.com/resilience-go/resilience/standard").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, h := range heavy {
			if strings.HasPrefix(pkg, h) {
				t.Errorf("an HTTP-only program compiles %s", pkg)
			}
		}
	}
}

// TestHTTPOnlyModuleGraph builds a throwaway module that imports
// resiliencehttp and standard, runs go mod tidy in it, and checks that
// neither its go.mod nor its module graph holds the Prometheus client or an
// OTel exporter: the library's go.mod must not push them on its users.
func TestHTTPOnlyModuleGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go mod tidy in a new module")
	}
	goTool := lookGo(t)
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/httponly\n\ngo 1.25.0\n\n"+
		"require github.com/resilience-go/resilience v0.0.0\n\n"+
		"replace github.com/resilience-go/resilience => "+root+"\n")
	write("main.go", `package main

import (
	"net/http"

	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	t, err := resiliencehttp.Standard(nil, standard.WithRetries(2))
	if err != nil {
		panic(err)
	}
	_ = &http.Client{Transport: t}
}
`)
	run := func(args ...string) string {
		cmd := exec.Command(goTool, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "tidy")
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	graph := run("list", "-m", "all")
	for _, bad := range []string{"github.com/prometheus/", "go.opentelemetry.io/otel/exporters/"} {
		if strings.Contains(string(gomod), bad) {
			t.Errorf("go mod tidy added a requirement on %s*:\n%s", bad, gomod)
		}
		if strings.Contains(graph, bad) {
			t.Errorf("the module graph of an HTTP-only program holds %s*:\n%s", bad, graph)
		}
	}
}

func lookGo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		p = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(p); err != nil {
			t.Fatal("the go command is needed for this test and was not found")
		}
	}
	return p
}
