package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == upstreamFlag {
		runUpstream()
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scenarios:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	root := repoRoot()
	fs := flag.NewFlagSet("scenarios", flag.ContinueOnError)
	var (
		stackList = fs.String("stacks", defaultStacks(), "comma-separated stacks to run (default all but the extra variants): "+allStacks())
		scenList  = fs.String("scenarios", "all", "comma-separated scenarios to run: "+scenarioNames())
		rate      = fs.Float64("rate", 200, "logical calls per second, open loop")
		seed      = fs.Uint64("seed", 1, "seed of the upstream's random faults (run i uses seed+i)")
		runs      = fs.Int("runs", 1, "runs of every stack through every scenario; tables show the median and the range")
		out       = fs.String("out", filepath.Join(root, "docs", "benchmarks.md"), "markdown file whose generated section is written")
		charts    = fs.String("charts", filepath.Join(root, "docs", "charts"), "directory for the SVG charts (empty: none)")
		section   = fs.String("section", "latest", "name of the generated section and prefix of the charts; a rerun replaces the section of the same name")
		label     = fs.String("label", "", "free text for the section's heading, such as \"baseline\"")
		png       = fs.Bool("png", false, "also write each chart as PNG, for viewers without SVG")
		smoke     = fs.Bool("smoke", false, "a few seconds: one short outage, stacks none and standard, output to a temporary directory, with sanity checks")
		redraw    = fs.String("redraw", "", "draw every chart in this directory again from the data embedded in it, run nothing, and exit")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./cmd/scenarios [flags]  (inside benchmarks/)\n\n"+
			"Drives an open-loop load through client stacks against an upstream process on loopback that\n"+
			"plays faults, and writes tables into a generated section of -out and charts into -charts.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *redraw != "" {
		n, err := redrawCharts(*redraw, *png)
		fmt.Fprintf(os.Stderr, "redrew %d chart(s) in %s\n", n, *redraw)
		return err
	}
	switch {
	case *rate <= 0 || *rate > 2000:
		return fmt.Errorf("-rate must be in (0, 2000], got %g", *rate)
	case *runs < 1 || *runs > 20:
		return fmt.Errorf("-runs must be in [1, 20], got %d", *runs)
	case !sectionName.MatchString(*section):
		return fmt.Errorf("-section must be letters, digits, '_', '.' or '-', got %q", *section)
	}

	s := &suite{section: *section, label: *label, rate: *rate, seed: *seed, runs: *runs,
		command: "go run ./cmd/scenarios" + quoteArgs(args), results: map[string]map[string][]*result{}, png: *png}
	var err error
	if *smoke {
		s.scenarios = []scenario{smokeScenario()}
		*stackList = "none,standard"
		s.rate, s.runs = 100, 1
		dir, err := os.MkdirTemp("", "scenarios-smoke-")
		if err != nil {
			return err
		}
		*out, *charts = filepath.Join(dir, "benchmarks.md"), filepath.Join(dir, "charts")
		s.section = "smoke"
	} else if s.scenarios, err = pickScenarios(*scenList); err != nil {
		return err
	}
	if s.stacks, err = pickStacks(*stackList); err != nil {
		return err
	}

	var total time.Duration
	for _, sc := range s.scenarios {
		total += sc.total()
	}
	fmt.Fprintf(os.Stderr, "%d scenario(s) × %d stack(s) × %d run(s), at least %v of load\n",
		len(s.scenarios), len(s.stacks), s.runs, (total * time.Duration(len(s.stacks)*s.runs)).Round(time.Second))

	s.loadStart, s.commit = loadAverage(), commit()
	began := time.Now()
	for i := range s.runs {
		for _, sc := range s.scenarios {
			if s.results[sc.Name] == nil {
				s.results[sc.Name] = map[string][]*result{}
			}
			for _, st := range s.stacks {
				r, err := runOne(sc, st, s.rate, s.seed+uint64(i))
				if err != nil {
					return err
				}
				s.results[sc.Name][st.name] = append(s.results[sc.Name][st.name], r)
				fmt.Fprintf(os.Stderr, "run %d  %-15s %-14s success %s, p99 %s, %d calls, %v\n", i+1, sc.Name, st.name,
					percent(successRate(r.calls)), seconds(latencyP(r.calls, 99, false)), len(r.calls), r.elapsed.Round(time.Millisecond))
			}
		}
	}
	s.elapsed = time.Since(began)
	s.loadEnd = loadAverage()

	if *charts != "" {
		if err := writeCharts(*charts, s); err != nil {
			return fmt.Errorf("charts: %w", err)
		}
	}
	if err := writeMarkdown(*out, *charts, s); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s", *out)
	if *charts != "" {
		fmt.Fprintf(os.Stderr, " and charts in %s", *charts)
	}
	fmt.Fprintf(os.Stderr, " (%v)\n", s.elapsed.Round(time.Second))
	if *smoke {
		return checkSmoke(s, *out, *charts)
	}
	return nil
}

// checkSmoke fails the smoke run when what it measured cannot be right:
// the unprotected client must have failed every call due in the outage and
// the upstream must have seen exactly one request per unprotected call,
// and the output must be there.
func checkSmoke(s *suite, out, charts string) error {
	sc := s.scenarios[0]
	var errs []error
	for _, st := range s.stacks {
		r := s.results[sc.Name][st.name][0]
		if want := int(s.rate * sc.total().Seconds()); len(r.calls) != want {
			errs = append(errs, fmt.Errorf("%s: %d calls, want %d", st.name, len(r.calls), want))
		}
		if st.name != "none" {
			continue
		}
		if v := successRate(inFault(sc, r.calls)); v != 0 {
			errs = append(errs, fmt.Errorf("none: %s of the calls due in a total outage succeeded, want 0", percent(v)))
		}
		var arrivals int
		for _, a := range r.up.Arrivals {
			arrivals += a
		}
		if arrivals != len(r.calls) {
			errs = append(errs, fmt.Errorf("none: the upstream saw %d requests for %d calls", arrivals, len(r.calls)))
		}
		if v := upstreamAmplification(sc, r); math.Abs(v-1) > 0.1 {
			errs = append(errs, fmt.Errorf("none: %.2f upstream arrivals per call in the fault, want about 1", v))
		}
	}
	for _, p := range []string{out, filepath.Join(charts, chartName(s.section, sc))} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			errs = append(errs, fmt.Errorf("smoke output %s missing or empty", p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "smoke checks passed")
	return nil
}

var sectionName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

func quoteArgs(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t\"'$`\\*?;&|<>()") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// repoRoot returns the parent of the benchmarks module, found from the
// working directory upwards, or "." when it is not found.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			isBench := sc.Scan() && strings.TrimSpace(sc.Text()) == "module github.com/resilience-go/resilience/benchmarks"
			f.Close()
			if isBench {
				return filepath.Dir(dir)
			}
			if _, err := os.Stat(filepath.Join(dir, "benchmarks", "go.mod")); err == nil {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}
