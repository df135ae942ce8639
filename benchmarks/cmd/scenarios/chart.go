package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartData is what one scenario's chart shows. It is embedded in the SVG
// it is drawn into (see embedData), so that -redraw can draw the chart
// again, in a new layout, without running the suite.
type chartData struct {
	Title  string        `json:"title"`
	Start  float64       `json:"fault_start_s"` // the fault, in seconds since the load started
	End    float64       `json:"fault_end_s"`
	Total  float64       `json:"total_s"` // the load's length
	Runs   int           `json:"runs"`
	Bucket float64       `json:"bucket_s"`
	Stacks []chartSeries `json:"stacks"` // in the order of the suite's stacks: a stack's color and dashes
}

// chartSeries is one stack's lines: points (seconds, value) at the middle
// of each bucket, the median over the runs. A bucket without calls has no
// success point.
type chartSeries struct {
	Name    string       `json:"name"`
	Success [][2]float64 `json:"success"` // share of the calls due in the bucket that succeeded
	RPS     [][2]float64 `json:"rps"`     // requests per second at the upstream
}

// chartOf returns the chart of scenario sc: per stack, the success rate
// and the upstream's requests per second over time, in buckets of
// bucketWidth, the median over the runs, bucket by bucket.
func chartOf(s *suite, sc scenario) chartData {
	n := int((sc.total() + bucketWidth - 1) / bucketWidth)
	d := chartData{Title: sc.Title, Start: sc.Pre.Seconds(), End: sc.faultEnd().Seconds(),
		Total: sc.total().Seconds(), Runs: s.runs, Bucket: bucketWidth.Seconds()}
	for _, st := range s.stacks {
		rs := s.results[sc.Name][st.name]
		cs := chartSeries{Name: st.name}
		for k := range n {
			x := (float64(k) + 0.5) * bucketWidth.Seconds()
			var sv, rv []float64
			for _, r := range rs {
				bs := successBuckets(sc, r.calls)
				if bs[k].calls > 0 {
					sv = append(sv, float64(bs[k].ok)/float64(bs[k].calls))
				}
				var a int
				if k < len(r.up.Arrivals) {
					a = r.up.Arrivals[k]
				}
				rv = append(rv, float64(a)/bucketWidth.Seconds())
			}
			if y := median(sv); !math.IsNaN(y) {
				cs.Success = append(cs.Success, [2]float64{x, y})
			}
			cs.RPS = append(cs.RPS, [2]float64{x, median(rv)})
		}
		d.Stacks = append(d.Stacks, cs)
	}
	return d
}

// writeCharts draws every scenario's chart into dir.
func writeCharts(dir string, s *suite) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, sc := range s.scenarios {
		if err := writeChart(filepath.Join(dir, chartName(s.section, sc)), chartOf(s, sc), s.png); err != nil {
			return err
		}
	}
	return nil
}

// redrawCharts draws every chart in dir again from the data embedded in
// it, and reports how many it drew.
func redrawCharts(dir string, png bool) (int, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.svg"))
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, p := range paths {
		svg, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, err := embeddedData(svg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if err := writeChart(p, d, png); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Chart geometry: drawn at 8 by 6.5 inches, a chart is shown about 800
// pixels wide (a README's width), where 10pt text is about 14 pixels.
const (
	chartWidth  = 8 * vg.Inch
	chartHeight = 6.5 * vg.Inch
	chartMargin = vg.Length(8)
)

// chartFont is the font of the charts: a sans serif, easier to read small
// than the default serif.
var chartFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

func textStyle(size vg.Length) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    font.From(chartFont, size),
		XAlign:  draw.XLeft,
		YAlign:  draw.YCenter,
		Handler: plot.DefaultTextHandler,
	}
}

// writeChart draws d into the SVG file path, with d embedded, and into a
// PNG beside it if png is set.
func writeChart(path string, d chartData, png bool) error {
	if len(d.Stacks) == 0 || d.Total <= 0 {
		return errors.New("a chart needs at least one stack and a positive length")
	}
	c := vgsvg.New(chartWidth, chartHeight)
	if err := drawChart(draw.New(c), d); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return err
	}
	// Where Liberation Sans is not installed, Arial has the same metrics:
	// text measured for one fits in the other.
	drawn := bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"),
		[]byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
	svg, err := embedData(drawn, d)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, svg, 0o644); err != nil {
		return err
	}
	if !png {
		return nil
	}
	pc := vgimg.PngCanvas{Canvas: vgimg.New(chartWidth, chartHeight)}
	if err := drawChart(draw.New(pc), d); err != nil {
		return err
	}
	return writeFile(strings.TrimSuffix(path, ".svg")+".png", pc)
}

// drawChart draws d on c: a title, what the chart shows, the legend in a
// row of its own (never over the lines), then the success rate above the
// upstream's requests per second, on one time axis, the fault shaded.
func drawChart(c draw.Canvas, d chartData) error {
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	c = draw.Crop(c, chartMargin, -chartMargin, chartMargin, -chartMargin)

	top := c.Max.Y
	title := textStyle(14)
	title.XAlign, title.YAlign = draw.XCenter, draw.YTop
	// Wrapped with room to spare: a viewer without the font may draw
	// the text wider than it was measured.
	for _, line := range wrap(title, d.Title, c.Size().X*0.75) {
		c.FillText(title, vg.Point{X: c.Center().X, Y: top}, line)
		top -= title.Height(line) + 2
	}
	top -= 2
	sub := textStyle(10.5)
	sub.XAlign, sub.YAlign = draw.XCenter, draw.YTop
	sub.Color = color.Gray{Y: 70}
	runs := "1 run"
	if d.Runs != 1 {
		runs = fmt.Sprintf("%d runs, the median", d.Runs)
	}
	subtitle := fmt.Sprintf("fault from %gs to %gs (shaded); one point per %gms bucket, %s", d.Start, d.End, d.Bucket*1000, runs)
	c.FillText(sub, vg.Point{X: c.Center().X, Y: top}, subtitle)
	top -= sub.Height(subtitle) + 8
	top = drawLegend(c, top, d.Stacks)

	succ := plot.New()
	succ.Y.Label.Text = "success rate"
	succ.Y.Min, succ.Y.Max = 0, 1.05
	succ.Y.Tick.Marker = percentTicks{}
	rps := plot.New()
	rps.X.Label.Text = "seconds since the load started"
	rps.Y.Label.Text = "upstream requests/s"
	rps.Y.Min = 0
	var high float64
	for _, st := range d.Stacks {
		for _, xy := range st.RPS {
			high = math.Max(high, xy[1])
		}
	}
	rps.Y.Max = math.Max(high*1.05, 1)
	rps.Y.Tick.Marker = roundTicks{}
	for _, p := range []*plot.Plot{succ, rps} {
		p.X.Min, p.X.Max = 0, d.Total
		p.X.Tick.Marker = secondTicks{}
		for _, a := range []*plot.Axis{&p.X, &p.Y} {
			a.Label.TextStyle.Font = font.From(chartFont, 11)
			a.Tick.Label.Font = font.From(chartFont, 10)
		}
		shade(p, d)
		p.Add(plotter.NewGrid())
	}
	for i, st := range d.Stacks {
		for _, pl := range []struct {
			p   *plot.Plot
			xys [][2]float64
		}{{succ, st.Success}, {rps, st.RPS}} {
			if len(pl.xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys(pl.xys))
			if err != nil {
				return err
			}
			l.LineStyle = stackLine(i)
			l.StepStyle = plotter.MidStep // flat across each bucket
			pl.p.Add(l)
		}
	}
	body := draw.Crop(c, 0, 0, 0, top-c.Max.Y)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(14)}
	cs := plot.Align([][]*plot.Plot{{succ}, {rps}}, tiles, body)
	succ.Draw(cs[0][0])
	rps.Draw(cs[1][0])
	return nil
}

// stackLine is the line of the i-th stack: its color and dashes.
func stackLine(i int) draw.LineStyle {
	return draw.LineStyle{Color: plotutil.Color(i), Dashes: plotutil.Dashes(i), Width: vg.Points(1.6)}
}

// drawLegend draws one entry per stack, a sample of its line and its
// name, in centered rows below top, and returns where the rows end.
func drawLegend(c draw.Canvas, top vg.Length, stacks []chartSeries) vg.Length {
	const (
		sample = vg.Length(26) // the line's sample
		gap    = vg.Length(5)  // between the sample and the name
		space  = vg.Length(22) // between entries
	)
	sty := textStyle(11)
	h := sty.Height("M")
	width := func(name string) vg.Length { return sample + gap + sty.Width(name) }
	var rows [][]int
	var row []int
	var used vg.Length
	for i, st := range stacks {
		w := width(st.Name)
		if len(row) > 0 && used+space+w > c.Size().X {
			rows = append(rows, row)
			row, used = nil, 0
		}
		if len(row) > 0 {
			used += space
		}
		row = append(row, i)
		used += w
	}
	rows = append(rows, row)
	for _, r := range rows {
		var w vg.Length
		for j, i := range r {
			if j > 0 {
				w += space
			}
			w += width(stacks[i].Name)
		}
		x, y := c.Center().X-w/2, top-h/2
		for _, i := range r {
			c.StrokeLine2(stackLine(i), x, y, x+sample, y)
			c.FillText(sty, vg.Point{X: x + sample + gap, Y: y}, stacks[i].Name)
			x += width(stacks[i].Name) + space
		}
		top -= h + 4
	}
	return top - 6
}

func xys(ps [][2]float64) plotter.XYs {
	out := make(plotter.XYs, len(ps))
	for i, p := range ps {
		out[i] = plotter.XY{X: p[0], Y: p[1]}
	}
	return out
}

// shade marks the fault window with a light band behind the lines.
func shade(p *plot.Plot, d chartData) {
	poly, err := plotter.NewPolygon(plotter.XYs{{X: d.Start, Y: p.Y.Min}, {X: d.End, Y: p.Y.Min}, {X: d.End, Y: p.Y.Max}, {X: d.Start, Y: p.Y.Max}})
	if err != nil {
		return
	}
	poly.Color = color.RGBA{R: 245, G: 228, B: 228, A: 255}
	poly.LineStyle.Width = 0
	p.Add(poly)
}

// secondTicks puts a labelled tick on every whole second.
type secondTicks struct{}

func (secondTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for x := math.Ceil(min); x <= max; x++ {
		ts = append(ts, plot.Tick{Value: x, Label: fmt.Sprintf("%g", x)})
	}
	return ts
}

// roundTicks labels 3 to 6 round values (1, 2 or 5 times a power of ten
// apart), with as many digits as they need.
type roundTicks struct{}

func (roundTicks) Ticks(min, max float64) []plot.Tick {
	span := max - min
	if span <= 0 {
		return []plot.Tick{{Value: min, Label: fmt.Sprintf("%g", min)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(span)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1, 2} {
		if span/(step*m) <= 6 {
			step *= m
			break
		}
	}
	// Rounded to the step's decimals: 3 × 0.2 prints as 0.6.
	perUnit := math.Pow(10, math.Max(0, -math.Floor(math.Log10(step))))
	var ts []plot.Tick
	for i := math.Ceil(min / step); i*step <= max; i++ {
		v := math.Round(i*step*perUnit) / perUnit
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ts
}

// wrap splits s into lines no wider than width in sty, at spaces.
func wrap(sty text.Style, s string, width vg.Length) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && sty.Width(line+" "+w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// percentTicks labels a share from 0 to 1 in percent, every 25%.
type percentTicks struct{}

func (percentTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for v := 0.0; v <= 1; v += 0.25 {
		if v >= min && v <= max {
			ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%g%%", v*100)})
		}
	}
	return ts
}

// The chart's data travels in the SVG, in a metadata element: the chart
// can be drawn again from its own file.
const (
	metaOpen  = `<metadata id="scenario-chart-data">`
	metaClose = `</metadata>`
)

// embedData puts d, as JSON, into svg before its end.
func embedData(svg []byte, d chartData) ([]byte, error) {
	js, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndex(svg, []byte("</svg>"))
	if end < 0 {
		return nil, errors.New("no </svg> in the drawn chart")
	}
	var b bytes.Buffer
	b.Write(svg[:end])
	b.WriteString(metaOpen)
	// Only what XML text cannot hold is escaped: the JSON stays legible.
	strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").WriteString(&b, string(js))
	b.WriteString(metaClose + "\n")
	b.Write(svg[end:])
	return b.Bytes(), nil
}

// embeddedData returns the data embedded in svg by embedData.
func embeddedData(svg []byte) (chartData, error) {
	var d chartData
	i := bytes.Index(svg, []byte(metaOpen))
	if i < 0 {
		return d, errors.New("no chart data in it (drawn before charts carried their data)")
	}
	rest := svg[i+len(metaOpen):]
	j := bytes.Index(rest, []byte(metaClose))
	if j < 0 {
		return d, errors.New("chart data not closed")
	}
	var js string
	if err := xml.Unmarshal([]byte("<m>"+string(rest[:j])+"</m>"), &js); err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		return d, fmt.Errorf("chart data: %w", err)
	}
	return d, nil
}
