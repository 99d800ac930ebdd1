package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// The bracket is round robin's, on the workload asked, whatever the rows'
// order; none when no rate reaches 1 s or the lowest already does.
func TestGoalBracket(t *testing.T) {
	mt := workload.KindMultiTurn
	rows := []fleetRow{
		goalRow(mt, "round_robin", 370.4, 1055, 0, 0, 1),
		goalRow(mt, "cacheaware", 185.2, 2000, 0, 0, 1), // not round robin
		goalRow(mt, "round_robin", 185.2, 166, 0, 0, 1),
		goalRow(workload.KindSharedPrefix, "round_robin", 300, 1200, 0, 0, 1), // another workload
		goalRow(mt, "round_robin", 500, 1400, 0, 0, 1),
		goalRow(mt, "round_robin", 100, 50, 0, 0, 1),
	}
	below, above, ok := goalBracket(rows, mt)
	if !ok || below.Rate != 185.2 || above.Rate != 370.4 {
		t.Fatalf("bracket %v %v %v, want 185.2 and 370.4", below.Rate, above.Rate, ok)
	}
	if _, _, ok := goalBracket(rows[:3], workload.KindSharedPrefix); ok {
		t.Fatal("a bracket for a workload without round robin rows")
	}
	if _, _, ok := goalBracket(rows[3:4], workload.KindSharedPrefix); ok {
		t.Fatal("a bracket when the lowest rate is already over 1 s")
	}
	if _, _, ok := goalBracket(rows[5:], mt); ok {
		t.Fatal("a bracket when no rate reaches 1 s")
	}
}

// With round robin's p50 = 3 ms × rate (1 s at 333.3 req/s), the search
// from 185.2 and 370.4 ends at a rate at or over 1 s within 2 % of the
// crossing, in at most searchMaxProbes runs, with each probe recorded.
func TestBisectGoalRate(t *testing.T) {
	var ran []float64
	probe := func(rate float64) (fleetRow, error) {
		ran = append(ran, rate)
		return fleetRow{Rate: rate, TTFT: pcts{P50: 3 * rate}}, nil
	}
	below, above := fleetRow{Rate: 185.2, TTFT: pcts{P50: 555.6}}, fleetRow{Rate: 370.4, TTFT: pcts{P50: 1111.2}}
	found, probes, err := bisectGoalRate(below, above, probe)
	if err != nil {
		t.Fatal(err)
	}
	if found.TTFT.P50 < goalTTFTms || found.Rate > 1000.0/3*(1+searchTolerance) {
		t.Fatalf("found %g req/s (%v ms), want at or over 1 s and within 2 %% of 333.3", found.Rate, found.TTFT.P50)
	}
	if len(probes) == 0 || len(probes) > searchMaxProbes || len(probes) != len(ran) {
		t.Fatalf("%d probes (%v), want 1..%d", len(probes), ran, searchMaxProbes)
	}
	for _, r := range ran {
		if r <= 185.2 || r >= 370.4 || r != math.Round(r*10)/10 {
			t.Fatalf("probed %g: outside the bracket or not rounded to 0.1", r)
		}
	}
	// A narrow bracket is not searched.
	ran = nil
	if found, probes, _ := bisectGoalRate(fleetRow{Rate: 364}, fleetRow{Rate: 370.4, TTFT: pcts{P50: 1050}}, probe); found.Rate != 370.4 || len(probes) != 0 {
		t.Fatalf("narrow bracket: found %g after %d probes", found.Rate, len(probes))
	}
	// A failed probe ends the search with its error and the bracket so far.
	boom := errors.New("boom")
	found, _, err = bisectGoalRate(below, above, func(float64) (fleetRow, error) { return fleetRow{}, boom })
	if !errors.Is(err, boom) || found.Rate != 370.4 {
		t.Fatalf("failed probe: %v, found %g", err, found.Rate)
	}
}

// searchGoalRate runs round robin alone while searching, each probe the
// median of three runs, then every other contender once at the rate
// found; when no probe gets under the sweep's rate, nothing is added.
func TestSearchGoalRate(t *testing.T) {
	mt := workload.KindMultiTurn
	contenders := []fleetContender{{Name: "round_robin"}, {Name: "least_queue"}, {Name: "cacheaware", Plugin: "cacheaware"}}
	sweep := []fleetRow{goalRow(mt, "round_robin", 185.2, 166, 0, 0, 1), goalRow(mt, "round_robin", 370.4, 1055, 0, 0, 1), goalRow(mt, "cacheaware", 370.4, 300, 0, 0, 1)}
	type call struct {
		c    string
		rate float64
	}
	var calls []call
	run := func(p50 func(float64) float64) func(c fleetContender, rate float64) (fleetRow, error) {
		return func(c fleetContender, rate float64) (fleetRow, error) {
			calls = append(calls, call{c.Name, rate})
			return goalRow(mt, c.Name, rate, p50(rate), 0, 0, 1), nil
		}
	}
	// Round robin's runs at a rate are 3 ms × rate, then 20 % under and
	// 40 % over it: the median is the first.
	nth := map[float64]int{}
	noisy := func(r float64) float64 {
		nth[r]++
		return 3 * r * [...]float64{1, 0.8, 1.4}[(nth[r]-1)%3]
	}
	s, add, ok, err := searchGoalRate(sweep, mt, contenders, 3, run(noisy))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if len(add) != 3 || add[0].Contender != "round_robin" || add[0].Rate != s.Rate || add[1].Contender != "least_queue" || add[2].Contender != "cacheaware" || add[2].Rate != s.Rate {
		t.Fatalf("added %+v for search %+v", add, s)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9*b }
	if rs := add[0].TTFTP50Runs; s.Rate > 1000.0/3*(1+searchTolerance) || add[0].TTFT.P50 != 3*s.Rate || len(rs) != 3 ||
		!near(rs[0], 2.4*s.Rate) || !near(rs[1], 3*s.Rate) || !near(rs[2], 4.2*s.Rate) {
		t.Fatalf("round robin at the rate found: %+v; want the median of its three runs, within 2 %% of 333.3", add[0])
	}
	n := 3 * len(s.Probes)
	if len(calls) != n+2 {
		t.Fatalf("%d calls for %d probes: want three runs a probe, then one each for the others", len(calls), len(s.Probes))
	}
	for i, c := range calls {
		if (i < n) != (c.c == "round_robin") {
			t.Fatalf("call %d %+v: the search runs round robin alone, then the others", i, c)
		}
	}
	for _, p := range s.Probes {
		if len(p.Runs) != 3 || p.TTFTP50 != p.Runs[1] {
			t.Fatalf("probe %+v: want three runs, the median judged", p)
		}
	}
	if line, p := s.searchLine(), s.Probes[0]; !strings.Contains(line, fmt.Sprintf("%g (%s, median of 3 runs, %s to %s)", p.Rate, msCell(p.TTFTP50), msCell(p.Runs[0]), msCell(p.Runs[2]))) {
		t.Fatalf("search line %q does not give the first probe's runs", line)
	}
	if s.Below.Rate != 185.2 || s.Above.Rate != 370.4 || s.Rate >= 370.4 || !strings.Contains(s.searchLine(), "where every contender ran") {
		t.Fatalf("search %+v: %s", s, s.searchLine())
	}
	// Gains the rows' goals: judged at the rate found, not 370.4.
	rows := append(slices.Clone(sweep), add...)
	for _, g := range fleetGoals(rows, nil) {
		if g.What == "TTFT p50 against round robin's" && g.Judged != (g.Rate == s.Rate) {
			t.Fatalf("goal %+v judged %v; want only the rate found (%g)", g, g.Judged, s.Rate)
		}
	}
	// Round robin under 1 s at every rate below 370.4: the sweep's rate
	// stands, and nothing is added.
	calls = nil
	s, add, ok, err = searchGoalRate(sweep, mt, contenders, 1, run(func(r float64) float64 { return 900 }))
	if err != nil || !ok || len(add) != 0 || s.Rate != 370.4 || !strings.Contains(s.searchLine(), "judged at the sweep's 370.4") {
		t.Fatalf("no lower rate: added %+v, search %+v", add, s)
	}
	// A bracket within the tolerance already: no probe, nothing added.
	narrow := []fleetRow{goalRow(mt, "round_robin", 364, 990, 0, 0, 1), goalRow(mt, "round_robin", 370.4, 1055, 0, 0, 1)}
	calls = nil
	s, add, ok, err = searchGoalRate(narrow, mt, contenders, 3, run(func(r float64) float64 { return 3 * r }))
	if err != nil || !ok || len(add) != 0 || len(calls) != 0 || !strings.Contains(s.searchLine(), "within 2 % already: judged at the sweep's 370.4") {
		t.Fatalf("narrow bracket: %d calls, added %+v, %s", len(calls), add, s.searchLine())
	}
	// No round robin among the contenders: no search.
	if _, _, ok, _ := searchGoalRate(sweep, mt, contenders[1:], 3, run(func(r float64) float64 { return 3 * r })); ok {
		t.Fatal("searched without round robin")
	}
}

// The no-sharing workload runs at shared-prefix's searched rate too.
func TestWorkloadRates(t *testing.T) {
	sweep := []float64{12.3, 185.2, 370.4}
	ss := []fleetSearch{{Workload: workload.KindSharedPrefix, Rate: 166.7}, {Workload: workload.KindMultiTurn, Rate: 358.8}}
	if got := workloadRates(workload.KindRandom, sweep, ss); !slices.Equal(got, []float64{12.3, 166.7, 185.2, 370.4}) {
		t.Fatalf("random: %v", got)
	}
	if got := workloadRates(workload.KindMultiTurn, sweep, ss); !slices.Equal(got, sweep) {
		t.Fatalf("multi-turn: %v", got)
	}
	if got := workloadRates(workload.KindRandom, sweep, ss[1:]); !slices.Equal(got, sweep) {
		t.Fatalf("random without shared-prefix's search: %v", got)
	}
}
