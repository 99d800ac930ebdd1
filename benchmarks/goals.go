package main

import (
	"fmt"
	"math"
	"strings"
)

// Issue 12's and issue 10's goals, checked against a run: the table a
// quiet run's report leads with, so that its headline comes from the
// harness rather than from hand-copied numbers. Ratios use comparable
// runs only (honest.go); a goal with none reads "n/c".

// goal is one line of the goals table.
type goal struct {
	What, Want string
	Got        float64 // NaN: not measured or not comparable
	Met        func(float64) bool
}

// goals derives the goals table from a report's rows and streams.
func goals(r *report) []goal {
	var gs []goal
	atLeast := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
	atMost := func(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
	for _, row := range r.ProxyRows {
		if row.Contender != kindSluice {
			continue
		}
		gs = append(gs,
			goal{fmt.Sprintf("Sluice req/s ÷ nginx, c=%d", row.Conns), "≥ 1.0", row.RPSRatio[kindNginx].Median, atLeast(1)},
			goal{fmt.Sprintf("Sluice CPU/request ÷ nginx, c=%d", row.Conns), "≤ 1.0", row.CPURatio[kindNginx].Median, atMost(1)})
	}
	for _, row := range r.PluginRows {
		if row.Contender == "sluice-golist" {
			gs = append(gs, goal{fmt.Sprintf("third-party-style Go plugin req/s ÷ Sluice alone, c=%d (issue 10)", row.Conns), "≥ 0.8", row.RPSRatio[kindSluice].Median, atLeast(0.8)})
		}
	}
	for _, n := range streamCounts(r.Streams) {
		cpu, ttfb, kib := streamGoals(r.Streams, n)
		gs = append(gs,
			goal{fmt.Sprintf("SSE CPU/event ÷ nginx, %d streams", n), "≤ 1.0", cpu, atMost(1)},
			goal{fmt.Sprintf("SSE burst TTFB p50 ÷ direct, %d streams", n), "≤ 2.0", ttfb, atMost(2)},
			goal{fmt.Sprintf("SSE memory per open stream, %d streams (KiB)", n), "≤ 16", kib, atMost(16)})
	}
	return gs
}

// streamCounts lists the stream counts run, in order.
func streamCounts(rs []streamResult) []int {
	var ns []int
	for _, r := range rs {
		if len(ns) == 0 || ns[len(ns)-1] != r.Client.Streams {
			ns = append(ns, r.Client.Streams)
		}
	}
	return ns
}

// streamGoals is Sluice at n streams: the median over rounds of its CPU
// per event over nginx's and its TTFB p50 over direct's in the same round,
// and of its KiB per open stream.
func streamGoals(rs []streamResult, n int) (cpu, ttfb, kib float64) {
	at := map[[2]int]map[string]streamResult{}
	for _, r := range rs {
		if r.Client.Streams != n {
			continue
		}
		k := [2]int{n, r.Round}
		if at[k] == nil {
			at[k] = map[string]streamResult{}
		}
		at[k][r.Path] = r
	}
	var cr, tr, mem []float64
	for _, round := range at {
		s, ok := round[kindSluice]
		if !ok {
			continue
		}
		mem = append(mem, float64(s.RSSPeakKiB-s.RSSIdleKiB)/float64(n))
		if ng, ok := round[kindNginx]; ok && ng.CPUPerEvent > 0 {
			cr = append(cr, s.CPUPerEvent/ng.CPUPerEvent)
		}
		if d, ok := round[kindDirect]; ok && d.Client.TTFB.P50 > 0 {
			tr = append(tr, s.Client.TTFB.P50/d.Client.TTFB.P50)
		}
	}
	return newStat(cr).Median, newStat(tr).Median, newStat(mem).Median
}

// goalsTable renders the goals.
func goalsTable(gs []goal) string {
	var b strings.Builder
	b.WriteString("| goal | want | measured | met |\n|---|---|---:|---|\n")
	for _, g := range gs {
		got, met := "n/c", "n/c"
		if !math.IsNaN(g.Got) {
			got, met = fmt.Sprintf("%.2f", g.Got), "no"
			if g.Met(g.Got) {
				met = "yes"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.What, g.Want, got, met)
	}
	return b.String()
}
