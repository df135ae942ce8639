package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
)

func testChart() chartData {
	return chartData{
		Title: "outage: every request answers 503 <for> 4.5s & more", Start: 1.5, End: 6, Total: 8.5, Runs: 3, Bucket: 0.25,
		Stacks: []chartSeries{
			{Name: "none", Success: [][2]float64{{0.125, 1}, {0.375, 0}}, RPS: [][2]float64{{0.125, 200}, {0.375, 200}}},
			{Name: "standard", Success: [][2]float64{{0.125, 1}, {0.375, 0.64}}, RPS: [][2]float64{{0.125, 200}, {0.375, 0}}},
		},
	}
}

// A chart carries its data: -redraw draws the same chart from it.
func TestChartRedrawsFromItsOwnData(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x-outage-503.svg")
	want := testChart()
	if err := writeChart(path, want, false); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := embeddedData(first)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("embedded data: got %+v, want %+v", got, want)
	}
	if n, err := redrawCharts(dir, false); n != 1 || err != nil {
		t.Fatalf("redrawCharts: %d, %v; want 1, nil", n, err)
	}
	again, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Fatal("the chart redrawn from its data differs from the chart drawn first")
	}
	// A chart without data is named in the error, and left alone.
	old := filepath.Join(dir, "old.svg")
	if err := os.WriteFile(old, []byte("<svg></svg>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := redrawCharts(dir, false); n != 1 || err == nil || !strings.Contains(err.Error(), "old.svg") {
		t.Fatalf("redrawCharts with a chart without data: %d, %v; want 1 and an error naming old.svg", n, err)
	}
}

func TestRoundTicks(t *testing.T) {
	tests := []struct {
		min, max float64
		want     []string
	}{
		{0, 840, []string{"0", "200", "400", "600", "800"}},
		{0, 283.5, []string{"0", "50", "100", "150", "200", "250"}},
		{0, 1050, []string{"0", "200", "400", "600", "800", "1000"}},
		{0, 1.05, []string{"0", "0.2", "0.4", "0.6", "0.8", "1"}},
		{0, 8, []string{"0", "2", "4", "6", "8"}},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range (roundTicks{}).Ticks(tt.min, tt.max) {
			got = append(got, tk.Label)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Ticks(%g, %g) = %q, want %q", tt.min, tt.max, got, tt.want)
		}
	}
}

func TestWrapFitsWidth(t *testing.T) {
	sty := textStyle(14)
	title := "starved client: the upstream stays healthy, the client process is stopped for 1.2s (SIGSTOP, SIGCONT)"
	width := 4 * vg.Inch
	lines := wrap(sty, title, width)
	if len(lines) < 2 || strings.Join(lines, " ") != title {
		t.Fatalf("wrap gave %q", lines)
	}
	for _, l := range lines {
		if sty.Width(l) > width {
			t.Errorf("line %q is wider than %v", l, width)
		}
	}
}
