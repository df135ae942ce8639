package resilience_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// inRepo maps the repository's library modules to their directories,
// relative to the root module: a user's module replaces each by its
// directory, as if it required their released versions.
var inRepo = map[string]string{
	"github.com/resilience-go/resilience":                        ".",
	"github.com/resilience-go/resilience/resiliencegrpc":         "resiliencegrpc",
	"github.com/resilience-go/resilience/idempotency/redisstore": "idempotency/redisstore",
	"github.com/resilience-go/resilience/ratelimit/redisrate":    "ratelimit/redisrate",
}

// TestModuleGraphs builds a throwaway user module for each entry point of
// the library (a program that imports only it), runs go mod tidy in it,
// and checks its module graph (go list -m all): the modules that only
// other entry points need (gRPC, go-redis, and the repository's other
// library modules), the examples' (the Prometheus client, OTel exporters)
// must not be in it, so that minimum version selection never raises a
// user's versions of them. It logs each graph's size.
func TestModuleGraphs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go mod tidy in new modules")
	}
	grpcMods := []string{"google.golang.org/grpc", "google.golang.org/genproto/", "google.golang.org/protobuf", "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/"}
	redisMods := []string{"github.com/redis/"}
	demoMods := []string{"github.com/prometheus/", "go.opentelemetry.io/otel/exporters/"}
	nested := func(except ...string) []string {
		var ms []string
		for m := range inRepo {
			if m != "github.com/resilience-go/resilience" && !slices.Contains(except, m) {
				ms = append(ms, m+" ")
			}
		}
		return ms
	}
	for _, tc := range []struct {
		name      string
		imports   []string
		body      string
		forbidden [][]string
	}{
		{
			name:    "http",
			imports: []string{"net/http", "github.com/resilience-go/resilience/resiliencehttp", "github.com/resilience-go/resilience/standard"},
			body: `t, err := resiliencehttp.Standard(nil, standard.WithRetries(2))
	if err != nil {
		panic(err)
	}
	_ = &http.Client{Transport: t}`,
			forbidden: [][]string{grpcMods, redisMods, demoMods, nested()},
		},
		{
			name:      "functions",
			imports:   []string{"context", "github.com/resilience-go/resilience", "github.com/resilience-go/resilience/retry"},
			body:      `_ = resilience.Chain(retry.New()).Do(context.Background(), func(context.Context) error { return nil })`,
			forbidden: [][]string{grpcMods, redisMods, demoMods, nested()},
		},
		{
			name:      "grpc",
			imports:   []string{"github.com/resilience-go/resilience/resiliencegrpc"},
			body:      `_, _ = resiliencegrpc.Standard()`,
			forbidden: [][]string{demoMods, nested("github.com/resilience-go/resilience/resiliencegrpc", "github.com/resilience-go/resilience/ratelimit/redisrate")},
		},
		{
			name:      "redisstore",
			imports:   []string{"github.com/resilience-go/resilience/idempotency/redisstore"},
			body:      `_ = redisstore.New`,
			forbidden: [][]string{grpcMods, demoMods, nested("github.com/resilience-go/resilience/idempotency/redisstore")},
		},
		{
			name:      "redisrate",
			imports:   []string{"github.com/resilience-go/resilience/ratelimit/redisrate"},
			body:      `_ = redisrate.New`,
			forbidden: [][]string{grpcMods, demoMods, nested("github.com/resilience-go/resilience/ratelimit/redisrate")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			graph := userModuleGraph(t, tc.imports, tc.body)
			mods := strings.Split(strings.TrimSpace(graph), "\n")
			t.Logf("a program that uses only %s has %d modules in its graph", tc.name, len(mods)-1)
			for _, line := range mods {
				for _, group := range tc.forbidden {
					for _, bad := range group {
						if strings.HasPrefix(line+" ", bad) {
							t.Errorf("the module graph of a %s-only program holds %s", tc.name, line)
						}
					}
				}
			}
		})
	}
}

// userModuleGraph makes a module whose main package imports imports and
// runs body, runs go mod tidy in it, and returns go list -m all.
func userModuleGraph(t *testing.T, imports []string, body string) string {
	t.Helper()
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
	gomod := "module example.com/user\n\ngo 1.25.0\n\n"
	for m, d := range inRepo {
		gomod += "replace " + m + " => " + filepath.Join(root, d) + "\n"
	}
	write("go.mod", gomod)
	src := "package main\n\nimport (\n"
	for _, imp := range imports {
		src += "\t\"" + imp + "\"\n"
	}
	write("main.go", src+")\n\nfunc main() {\n\t"+body+"\n}\n")
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
	run("build", "-o", os.DevNull, ".")
	return run("list", "-m", "all")
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
