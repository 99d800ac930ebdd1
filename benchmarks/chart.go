package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartColors are the bar colours per connection count, in order.
var chartColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// writeChart draws two panels side by side, median req/s and median p99
// latency per contender, one bar per connection count, and writes them as
// a PNG to path.
func writeChart(path string, rows []row) error {
	var contenders []string
	var conns []int
	for _, r := range rows {
		if !contains(contenders, r.Contender) {
			contenders = append(contenders, r.Contender)
		}
		if !contains(conns, r.Conns) {
			conns = append(conns, r.Conns)
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("benchmarks: chart: no results to draw")
	}
	rps, err := barPanel("Throughput (median)", "req/s", contenders, conns, rows, func(r row) float64 { return r.RPS.Median })
	if err != nil {
		return err
	}
	p99, err := barPanel("p99 latency (median)", "ms", contenders, conns, rows, func(r row) float64 { return r.P99.Median })
	if err != nil {
		return err
	}
	return writePanels(path, "chart", []*plot.Plot{rps, p99}, 14*vg.Inch, 5*vg.Inch, 110)
}

// writePanels draws panels side by side on one w×h image at dpi dots per
// inch and writes it as a PNG to path, creating its folder. what names the
// chart in errors.
func writePanels(path, what string, panels []*plot.Plot, w, h vg.Length, dpi int) error {
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Inch / 3, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for j := range panels {
		panels[j].Draw(canvases[0][j])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("benchmarks: %s: %w", what, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("benchmarks: %s: %w", what, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("benchmarks: %s: %w", what, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("benchmarks: %s: %w", what, err)
	}
	return nil
}

// barPanel makes one grouped bar chart: a group per contender, a bar per
// connection count.
func barPanel(title, unit string, contenders []string, conns []int, rows []row, value func(row) float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.X.Label.Text = "contender"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid()) // first, so the bars hide it
	barW := vg.Points(float64(60) / float64(len(conns)))
	top := 0.0
	for i, cn := range conns {
		vals := make(plotter.Values, len(contenders))
		for j, name := range contenders {
			for _, r := range rows {
				if r.Contender == name && r.Conns == cn {
					vals[j] = value(r)
					top = max(top, vals[j])
				}
			}
		}
		b, err := plotter.NewBarChart(vals, barW)
		if err != nil {
			return nil, fmt.Errorf("benchmarks: chart %s: %w", title, err)
		}
		b.Color = chartColors[i%len(chartColors)]
		b.LineStyle.Width = 0
		b.Offset = barW * vg.Length(float64(i)-float64(len(conns)-1)/2)
		p.Add(b)
		p.Legend.Add(fmt.Sprintf("c=%d", cn), b)
	}
	p.NominalX(contenders...)
	// Room above the tallest bar for the legend, and half a slot on each
	// side so the outer groups are not cut by the axes.
	p.Y.Min, p.Y.Max = 0, top*1.25
	if top == 0 {
		p.Y.Max = 1
	}
	p.X.Min, p.X.Max = -0.6, float64(len(contenders))-0.4
	return p, nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
