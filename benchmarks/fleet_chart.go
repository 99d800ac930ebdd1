package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// fleetColors extend chartColors for up to eight contenders.
var fleetColors = append(append([]color.Color{}, chartColors...),
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
)

// writeFleetChart draws TTFT p50 against the offered rate, one panel per
// workload and one line per contender, and writes it as a PNG to path.
func writeFleetChart(path string, rows []fleetRow, workloads, contenders []string) error {
	if len(rows) == 0 || len(workloads) == 0 {
		return fmt.Errorf("benchmarks: fleet chart: no results to draw")
	}
	var panels []*plot.Plot
	for _, wl := range workloads {
		p := plot.New()
		p.Title.Text = "TTFT p50 — " + wl
		p.X.Label.Text = "offered rate (req/s, simulated)"
		p.Y.Label.Text = "TTFT p50 (ms, simulated)"
		p.Legend.Top, p.Legend.Left = true, true
		p.Add(plotter.NewGrid())
		top := 0.0
		for i, c := range contenders {
			var pts plotter.XYs
			for _, r := range rows {
				if r.Workload == wl && r.Contender == c && r.Errors < r.Requests {
					pts = append(pts, plotter.XY{X: r.Rate, Y: r.TTFT.P50})
					top = max(top, r.TTFT.P50)
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return fmt.Errorf("benchmarks: fleet chart %s: %w", wl, err)
			}
			l.Color, s.Color = fleetColors[i%len(fleetColors)], fleetColors[i%len(fleetColors)]
			l.Width = vg.Points(1.5)
			p.Add(l, s)
			p.Legend.Add(c, l, s)
		}
		// Room above the highest point for the legend.
		p.Y.Min, p.Y.Max = 0, max(top*1.4, 1)
		panels = append(panels, p)
	}
	return writePanels(path, "fleet chart", panels, vg.Length(len(panels))*6*vg.Inch, 4.5*vg.Inch, 100)
}
