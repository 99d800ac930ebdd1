package main

import (
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// Issue 15's routing goals, checked against a fleet run by the harness
// (as goals.go does for the proxy benchmark), so that a report's verdict
// comes from its own rows. They are judged for the cacheaware contender
// at the rate where round robin's TTFT p50 on the workload reaches
// goalTTFTms (the lowest such rate of the rows, which the search of
// fleet_search.go adds between the sweep's; higher ones are listed, not
// judged), on the medians of runs there (fleet_runs.go); the no-sharing
// workload at the shared-prefix workload's rates (its prompts are as
// long); the spread of load at every rate. The plugin's CPU goal is a
// benchmark of its own (BenchmarkPluginHot8KiB), not part of this run.

// goalTTFTms is the TTFT p50 of round robin, in simulated ms, from which
// a rate is judged.
const goalTTFTms = 1000

// goalPolicy is the contender the goals are about.
const goalPolicy = "cacheaware"

// fleetGoal is one line of the goals table.
type fleetGoal struct {
	What     string  `json:"what"`
	Workload string  `json:"workload"`
	Rate     float64 `json:"rate"` // 0: every rate
	// Judged is false for a rate past the one the goal is judged at.
	Judged bool   `json:"judged"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
	// Note says what bounds the figure, when something does.
	Note string `json:"note,omitempty"`
}

// fleetGoals derives the goals from rows. ceilings are the workloads'
// hit-rate ceilings (a workload without one gets no bound).
func fleetGoals(rows []fleetRow, ceilings map[string]float64) []fleetGoal {
	find := func(wl, c string, rate float64) (fleetRow, bool) {
		for _, r := range rows {
			if r.Workload == wl && r.Contender == c && r.Rate == rate {
				return r, true
			}
		}
		return fleetRow{}, false
	}
	var gs []fleetGoal
	for _, wl := range []string{workload.KindSharedPrefix, workload.KindMultiTurn} {
		if g, ok := unjudged(rows, wl); ok {
			gs = append(gs, g)
		}
		for i, rate := range goalRates(rows, wl) {
			first := len(gs)
			ca, ok := find(wl, goalPolicy, rate)
			rr, _ := find(wl, "round_robin", rate)
			if !ok {
				continue
			}
			hit := ca.HitRate / rr.HitRate
			g := fleetGoal{What: "prefix hit rate ÷ round robin's", Workload: wl, Rate: rate, Want: "≥ 3.0",
				Got: fmt.Sprintf("%.2f (%s against %s)", hit, hitCell(ca.HitRate), hitCell(rr.HitRate)), Met: hit >= 3}
			if top, ok := ceilings[wl]; ok && rr.HitRate > 0 {
				g.Note = fmt.Sprintf("no router exceeds %.2f here: the workload's ceiling %s over round robin's %s",
					top/rr.HitRate, hitCell(top), hitCell(rr.HitRate))
			}
			gs = append(gs, g)
			cut := ca.TTFT.P50/rr.TTFT.P50 - 1
			gs = append(gs, fleetGoal{What: "TTFT p50 against round robin's", Workload: wl, Rate: rate, Want: "≤ −70 %",
				Got: fmt.Sprintf("%+.1f %% (%s against %s)", 100*cut, msCell(ca.TTFT.P50)+runsCell(ca), msCell(rr.TTFT.P50)+runsCell(rr)), Met: cut <= -0.70})
			if lq, ok := find(wl, "least_queue", rate); ok {
				gs = append(gs, fleetGoal{What: "TTFT p50 below least_queue's", Workload: wl, Rate: rate, Want: "lower",
					Got: fmt.Sprintf("%s against %s", msCell(ca.TTFT.P50)+runsCell(ca), msCell(lq.TTFT.P50)+runsCell(lq)), Met: ca.TTFT.P50 < lq.TTFT.P50})
			}
			tok := ca.OutTokS / rr.OutTokS
			gs = append(gs, fleetGoal{What: "output tok/s ÷ round robin's", Workload: wl, Rate: rate, Want: "≥ 1.5",
				Got: fmt.Sprintf("%.2f", tok), Met: tok >= 1.5})
			lq, _ := find(wl, "least_queue", rate)
			bound := machineBound(ca, rr, lq)
			for j := first; j < len(gs); j++ {
				gs[j].Judged = i == 0
				gs[j].Note = joinNotes(gs[j].Note, bound)
				gs[j].Met = gs[j].Met && bound == ""
			}
		}
	}
	for i, rate := range goalRates(rows, judgedWorkload(workload.KindRandom)) {
		ca, ok := find(workload.KindRandom, goalPolicy, rate)
		lq, ok2 := find(workload.KindRandom, "least_queue", rate)
		if !ok || !ok2 {
			continue
		}
		d := ca.TTFT.P50/lq.TTFT.P50 - 1
		gs = append(gs, fleetGoal{What: "TTFT p50 against least_queue's (nothing to reuse)", Workload: workload.KindRandom, Rate: rate, Want: "≤ +5 %",
			Got: fmt.Sprintf("%+.1f %% (%s against %s)", 100*d, msCell(ca.TTFT.P50)+runsCell(ca), msCell(lq.TTFT.P50)+runsCell(lq)), Met: d <= 0.05 && machineBound(ca, lq) == "", Judged: i == 0,
			Note: machineBound(ca, lq)})
	}
	spread := map[string]float64{}
	var order []string
	for _, r := range rows {
		if r.Contender != goalPolicy {
			continue
		}
		if _, ok := spread[r.Workload]; !ok {
			order = append(order, r.Workload)
		}
		spread[r.Workload] = max(spread[r.Workload], r.Spread)
	}
	for _, wl := range order {
		gs = append(gs, fleetGoal{What: "most requests on one engine ÷ fair share, worst rate", Workload: wl, Want: "≤ 2",
			Got: fmt.Sprintf("%.2f", spread[wl]), Met: spread[wl] <= 2, Judged: true})
	}
	return gs
}

// machineBound is a goal's note when a row it was judged on is
// machine-bound (harnessBound, after the repeats), "" otherwise; such a
// goal is not met, whatever the figure.
func machineBound(rows ...fleetRow) string {
	var bad []string
	for _, r := range rows {
		if r.HarnessBound != "" {
			bad = append(bad, r.Contender+"'s run: "+r.HarnessBound)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "machine-bound, so not a measurement of routing: " + strings.Join(bad, "; ")
}

// joinNotes joins two notes with "; ", either possibly empty.
func joinNotes(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}

// unjudged is the line that says why a workload run with round robin
// has no goals judged: round robin's TTFT p50 stayed under goalTTFTms at
// every rate (the sweep did not reach the load the goals are set at).
func unjudged(rows []fleetRow, wl string) (fleetGoal, bool) {
	top, at, seen := 0.0, 0.0, false
	for _, r := range rows {
		if r.Workload != wl || r.Contender != "round_robin" {
			continue
		}
		if r.TTFT.P50 >= goalTTFTms {
			return fleetGoal{}, false
		}
		if !seen || r.TTFT.P50 > top {
			top, at = r.TTFT.P50, r.Rate
		}
		seen = true
	}
	if !seen {
		return fleetGoal{}, false
	}
	return fleetGoal{What: "round robin's TTFT p50 reaches 1 s at some rate (else nothing is judged)", Workload: wl, Rate: at,
		Want: fmt.Sprintf("≥ %d ms", goalTTFTms), Got: fmt.Sprintf("%s at most", msCell(top)), Judged: true}, true
}

// fleetGoalsTable renders the goals.
func fleetGoalsTable(gs []fleetGoal) string {
	var b strings.Builder
	b.WriteString("| goal | workload | rate (req/s) | want | measured | met |\n|---|---|---:|---|---|---|\n")
	for _, g := range gs {
		rate, met := "all", "no"
		if g.Rate > 0 {
			rate = fmt.Sprintf("%g", g.Rate)
		}
		if g.Met {
			met = "yes"
		}
		if !g.Judged {
			met += ", not judged (past the rate where round robin reached 1 s)"
		}
		if g.Note != "" {
			met += " (" + g.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", g.What, g.Workload, rate, g.Want, g.Got, met)
	}
	return b.String()
}
