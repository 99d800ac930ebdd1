package main

import (
	"math"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

func goalRow(wl, c string, rate, ttft, tok, hit, spread float64) fleetRow {
	return fleetRow{Workload: wl, Contender: c, Rate: rate, TTFT: pcts{P50: ttft}, OutTokS: tok, HitRate: hit, Spread: spread}
}

// Goals are judged at the rate where round robin's TTFT p50 reaches 1 s,
// each against its own row, with the ceiling's bound beside the hit rate;
// a higher such rate is listed, not judged.
func TestFleetGoals(t *testing.T) {
	sp, mt, rnd := workload.KindSharedPrefix, workload.KindMultiTurn, workload.KindRandom
	rows := []fleetRow{
		// 100 req/s: round robin under 1 s, not judged.
		goalRow(sp, "round_robin", 100, 900, 1000, 0.30, 1),
		goalRow(sp, "cacheaware", 100, 100, 3000, 0.80, 1),
		goalRow(sp, "round_robin", 150, 1000, 1500, 0.28, 1),
		goalRow(sp, "least_queue", 150, 1100, 1400, 0.29, 1.2),
		goalRow(sp, "cacheaware", 150, 200, 3300, 0.76, 1.1),
		goalRow(sp, "round_robin", 370, 1500, 1500, 0.25, 1),
		goalRow(sp, "cacheaware", 370, 630, 3200, 0.70, 1),
		goalRow(mt, "round_robin", 370, 1050, 1000, 0.10, 1),
		goalRow(mt, "least_queue", 370, 150, 1400, 0.10, 1),
		goalRow(mt, "cacheaware", 370, 310, 1900, 0.61, 2.5),
		goalRow(rnd, "least_queue", 150, 1000, 1000, 0, 1),
		goalRow(rnd, "cacheaware", 150, 1060, 1000, 0, 1),
	}
	gs := fleetGoals(rows, map[string]float64{sp: 0.806, mt: 0.578})
	type key struct {
		what, wl string
		rate     float64
	}
	got := map[key]fleetGoal{}
	for _, g := range gs {
		if g.Rate == 100 || strings.HasPrefix(g.What, "round robin's TTFT p50 reaches") {
			t.Fatalf("judged a rate where round robin is under 1 s, or said none was judged: %+v", g)
		}
		got[key{g.What, g.Workload, g.Rate}] = g
	}
	check := func(what, wl string, rate float64, met bool, gotPart string) {
		t.Helper()
		g, ok := got[key{what, wl, rate}]
		if !ok {
			t.Fatalf("no goal %q on %s at %g in %+v", what, wl, rate, gs)
		}
		if g.Met != met || !strings.Contains(g.Got, gotPart) {
			t.Fatalf("%q on %s at %g: met %v got %q; want %v and %q", what, wl, rate, g.Met, g.Got, met, gotPart)
		}
	}
	check("prefix hit rate ÷ round robin's", sp, 150, false, "2.71")
	check("TTFT p50 against round robin's", sp, 150, true, "-80.0 %")
	check("TTFT p50 below least_queue's", sp, 150, true, "200 ms against 1100 ms")
	check("output tok/s ÷ round robin's", sp, 150, true, "2.20")
	check("prefix hit rate ÷ round robin's", mt, 370, true, "6.10")
	check("TTFT p50 against round robin's", mt, 370, true, "-70.5 %")
	check("TTFT p50 below least_queue's", mt, 370, false, "310 ms against 150 ms")
	check("output tok/s ÷ round robin's", mt, 370, true, "1.90")
	check("TTFT p50 against least_queue's (nothing to reuse)", rnd, 150, false, "+6.0 %")
	check("TTFT p50 against round robin's", sp, 370, false, "-58.0 %")
	for k, g := range got {
		if g.Judged != (k.wl != sp || k.rate != 370) {
			t.Fatalf("%+v: judged %v", k, g.Judged)
		}
	}
	check("most requests on one engine ÷ fair share, worst rate", sp, 0, true, "1.10")
	check("most requests on one engine ÷ fair share, worst rate", mt, 0, false, "2.50")
	if n := got[key{"prefix hit rate ÷ round robin's", sp, 150}].Note; !strings.Contains(n, "no router exceeds 2.88") {
		t.Fatalf("shared-prefix bound note %q", n)
	}
	if n := got[key{"prefix hit rate ÷ round robin's", mt, 370}].Note; !strings.Contains(n, "no router exceeds 5.78") {
		t.Fatalf("multi-turn bound note %q", n)
	}
	if n := fleetGoals(rows, map[string]float64{sp: 0.806}); strings.Contains(fleetGoalsTable(n), "5.78") {
		t.Fatal("a bound for a workload without a ceiling")
	}
	table := fleetGoalsTable(gs)
	for _, want := range []string{"| prefix hit rate ÷ round robin's | shared-prefix | 150 | ≥ 3.0 | 2.71 (76.0 % against 28.0 %) | no (no router exceeds 2.88",
		"| most requests on one engine ÷ fair share, worst rate | multi-turn | all | ≤ 2 | 2.50 | no |",
		"| TTFT p50 against round robin's | shared-prefix | 370 | ≤ −70 % | -58.0 % (630 ms against 1500 ms) | no, not judged (past the rate where round robin reached 1 s) |"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
}

// Engines without prefix counters give no hit-rate verdict, and no run
// where round robin reached 1 s gives no rate-bound goal.
func TestFleetGoalsWithoutData(t *testing.T) {
	sp := workload.KindSharedPrefix
	rows := []fleetRow{
		goalRow(sp, "round_robin", 150, 1000, 1500, math.NaN(), 1),
		goalRow(sp, "cacheaware", 150, 200, 3300, math.NaN(), 1),
	}
	for _, g := range fleetGoals(rows, nil) {
		if strings.HasPrefix(g.What, "prefix hit") && (g.Met || g.Note != "") {
			t.Fatalf("hit rate without counters: %+v", g)
		}
	}
	rows[0].TTFT.P50 = 999
	gs := fleetGoals(rows, nil)
	var said bool
	for _, g := range gs {
		if strings.HasPrefix(g.What, "round robin's TTFT p50 reaches 1 s") {
			said = g.Workload == sp && g.Rate == 150 && !g.Met && g.Got == "999 ms at most"
			continue
		}
		if g.Rate != 0 {
			t.Fatalf("judged a rate where round robin is under 1 s: %+v", g)
		}
	}
	if !said {
		t.Fatalf("no line says shared-prefix was not judged: %+v", gs)
	}
}
