package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// The median run is the middle one by TTFT p50 (the lower middle for an
// even count), whatever the order, with every p50; one run is itself; a
// machine-bound run marks the median.
func TestMedianRun(t *testing.T) {
	mt := workload.KindMultiTurn
	runs := []fleetRow{goalRow(mt, "cacheaware", 358.9, 281, 2400, 0.57, 1), goalRow(mt, "cacheaware", 358.9, 266, 2500, 0.58, 1), goalRow(mt, "cacheaware", 358.9, 277, 2471, 0.577, 1)}
	m := medianRun(runs)
	if m.TTFT.P50 != 277 || m.OutTokS != 2471 || !slices.Equal(m.TTFTP50Runs, []float64{266, 277, 281}) || m.HarnessBound != "" {
		t.Fatalf("median of three: %+v", m)
	}
	if runs[0].TTFTP50Runs != nil || runs[0].TTFT.P50 != 281 {
		t.Fatal("medianRun changed its argument")
	}
	if m := medianRun(append(slices.Clone(runs), goalRow(mt, "cacheaware", 358.9, 300, 0, 0, 1))); m.TTFT.P50 != 277 || len(m.TTFTP50Runs) != 4 {
		t.Fatalf("median of four: %+v, want the lower middle run", m)
	}
	if m := medianRun(runs[:1]); m.TTFT.P50 != 281 || m.TTFTP50Runs != nil {
		t.Fatalf("one run: %+v", m)
	}
	runs[0].HarnessBound = "the machine's CPUs were 97 % busy (≥ 95 %)"
	if m := medianRun(runs); m.TTFT.P50 != 277 || m.HarnessBound != "run 3 of 3: the machine's CPUs were 97 % busy (≥ 95 %)" {
		t.Fatalf("a machine-bound run: %+v", m)
	}
	if got := runsCell(m); got != " (median of 3 runs: 266 ms to 281 ms)" {
		t.Fatalf("runsCell %q", got)
	}
	if got := runsCell(runs[1]); got != "" {
		t.Fatalf("runsCell of one run %q", got)
	}
}

// runMedian runs n times (once for n < 1) and stops at an error.
func TestRunMedian(t *testing.T) {
	calls := 0
	p50s := []float64{900, 1100, 1000, 1}
	r, err := runMedian(3, func() (fleetRow, error) {
		calls++
		return fleetRow{TTFT: pcts{P50: p50s[calls-1]}}, nil
	})
	if err != nil || calls != 3 || r.TTFT.P50 != 1000 {
		t.Fatalf("%d calls, %+v, %v", calls, r, err)
	}
	calls = 0
	if _, err := runMedian(0, func() (fleetRow, error) { calls++; return fleetRow{}, nil }); err != nil || calls != 1 {
		t.Fatalf("n = 0: %d calls, %v", calls, err)
	}
	boom := errors.New("boom")
	calls = 0
	if _, err := runMedian(3, func() (fleetRow, error) {
		calls++
		if calls == 2 {
			return fleetRow{}, boom
		}
		return fleetRow{}, nil
	}); !errors.Is(err, boom) || calls != 2 {
		t.Fatalf("error: %d calls, %v", calls, err)
	}
}

// fakeRuns is a run function for repeatJudged's tests: each contender's
// runs return the p50s listed for it in turn (the last one again when
// they run out), and every call is recorded as "contender@rate".
type fakeRuns struct {
	wl    string
	p50s  map[string][]float64
	calls []string
	n     map[string]int
}

func (f *fakeRuns) run(c fleetContender, rate float64) (fleetRow, error) {
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.calls = append(f.calls, fmt.Sprintf("%s@%g", c.Name, rate))
	ps := f.p50s[c.Name]
	p := ps[min(f.n[c.Name], len(ps)-1)]
	f.n[c.Name]++
	return goalRow(f.wl, c.Name, rate, p, 0, 0, 1), nil
}

var runsContenders = []fleetContender{{Name: "round_robin"}, {Name: "least_queue"}, {Name: "queuepicker", Plugin: "queuepicker"}, {Name: "cacheaware", Plugin: "cacheaware"}}

// At the rate judged, the goal contenders' rows become medians of n runs:
// a probe's row is kept, the others get n−1 more runs, the contenders
// the goals do not compare and the other rates none.
func TestRepeatJudged(t *testing.T) {
	mt := workload.KindMultiTurn
	probe := medianRun([]fleetRow{goalRow(mt, "round_robin", 358.9, 990, 0, 0, 1), goalRow(mt, "round_robin", 358.9, 1010, 0, 0, 1), goalRow(mt, "round_robin", 358.9, 1020, 0, 0, 1)})
	rows := []fleetRow{
		goalRow(mt, "round_robin", 185.2, 500, 0, 0, 1), goalRow(mt, "cacheaware", 185.2, 80, 0, 0, 1),
		goalRow(mt, "round_robin", 370.4, 1050, 0, 0, 1), goalRow(mt, "cacheaware", 370.4, 310, 0, 0, 1),
		probe, goalRow(mt, "least_queue", 358.9, 1000, 0, 0, 1), goalRow(mt, "queuepicker", 358.9, 1200, 0, 0, 1), goalRow(mt, "cacheaware", 358.9, 270, 0, 0, 1),
	}
	f := &fakeRuns{wl: mt, p50s: map[string][]float64{"least_queue": {1100, 900}, "cacheaware": {300, 280}}}
	if err := repeatJudged(rows, 0, mt, 3, runsContenders, f.run); err != nil {
		t.Fatal(err)
	}
	if want := []string{"least_queue@358.9", "least_queue@358.9", "cacheaware@358.9", "cacheaware@358.9"}; !slices.Equal(f.calls, want) {
		t.Fatalf("ran %v, want %v", f.calls, want)
	}
	if r := rows[4]; r.TTFT.P50 != 1010 || !slices.Equal(r.TTFTP50Runs, []float64{990, 1010, 1020}) {
		t.Fatalf("the probe's row changed: %+v", r)
	}
	if r := rows[5]; r.TTFT.P50 != 1000 || !slices.Equal(r.TTFTP50Runs, []float64{900, 1000, 1100}) {
		t.Fatalf("least_queue: %+v", r)
	}
	if r := rows[7]; r.TTFT.P50 != 280 || !slices.Equal(r.TTFTP50Runs, []float64{270, 280, 300}) {
		t.Fatalf("cacheaware: %+v", r)
	}
	if rows[6].TTFTP50Runs != nil || rows[3].TTFTP50Runs != nil {
		t.Fatal("repeated a contender the goals do not compare, or another rate")
	}
	// Again: everything at the rate is a median already, nothing runs.
	f.calls = nil
	if err := repeatJudged(rows, 0, mt, 3, runsContenders, f.run); err != nil || len(f.calls) != 0 {
		t.Fatalf("second pass ran %v (%v)", f.calls, err)
	}
	// One run each: nothing to do.
	if err := repeatJudged(rows[:4:4], 0, mt, 1, runsContenders, f.run); err != nil || len(f.calls) != 0 {
		t.Fatalf("n = 1 ran %v (%v)", f.calls, err)
	}
}

// When round robin's median at the rate falls under 1 s, the goals move to
// the next rate where it is over, and that rate's rows are repeated too.
func TestRepeatJudgedMovesUp(t *testing.T) {
	mt := workload.KindMultiTurn
	rows := []fleetRow{
		goalRow(mt, "round_robin", 370.4, 1010, 0, 0, 1), goalRow(mt, "cacheaware", 370.4, 310, 0, 0, 1),
		goalRow(mt, "round_robin", 500, 1400, 0, 0, 1), goalRow(mt, "cacheaware", 500, 600, 0, 0, 1),
	}
	f := &fakeRuns{wl: mt, p50s: map[string][]float64{"round_robin": {960, 980, 1380}, "cacheaware": {320}}}
	if err := repeatJudged(rows, 0, mt, 3, runsContenders, f.run); err != nil {
		t.Fatal(err)
	}
	want := []string{"round_robin@370.4", "round_robin@370.4", "cacheaware@370.4", "cacheaware@370.4", "round_robin@500", "round_robin@500", "cacheaware@500", "cacheaware@500"}
	if !slices.Equal(f.calls, want) {
		t.Fatalf("ran %v, want %v", f.calls, want)
	}
	if r := rows[0]; r.TTFT.P50 != 980 || len(r.TTFTP50Runs) != 3 {
		t.Fatalf("round robin at 370.4: %+v", r)
	}
	if rates := goalRates(rows, mt); !slices.Equal(rates, []float64{500}) || len(rows[3].TTFTP50Runs) != 3 {
		t.Fatalf("goal rates %v, cacheaware at 500 %+v", rates, rows[3])
	}
	for _, g := range fleetGoals(rows, nil) {
		if g.What == "TTFT p50 against round robin's" && (g.Rate != 500 || !g.Judged || !strings.Contains(g.Got, "median of 3 runs")) {
			t.Fatalf("goal %+v: want judged at 500 on medians", g)
		}
	}
}

// The no-sharing workload is repeated at shared-prefix's rate, whatever
// its own round robin's TTFT; an error stops the repeats.
func TestRepeatJudgedNoSharing(t *testing.T) {
	sp, rnd := workload.KindSharedPrefix, workload.KindRandom
	all := []fleetRow{
		goalRow(sp, "round_robin", 157.4, 1001, 0, 0, 1), goalRow(sp, "cacheaware", 157.4, 94, 0, 0, 1),
		goalRow(rnd, "round_robin", 157.4, 500, 0, 0, 1), goalRow(rnd, "least_queue", 157.4, 400, 0, 0, 1), goalRow(rnd, "cacheaware", 157.4, 404, 0, 0, 1),
		goalRow(rnd, "least_queue", 185.2, 600, 0, 0, 1),
	}
	f := &fakeRuns{wl: rnd, p50s: map[string][]float64{"round_robin": {510}, "least_queue": {410}, "cacheaware": {402}}}
	if err := repeatJudged(all, 2, rnd, 3, runsContenders, f.run); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 6 || all[4].TTFT.P50 != 402 || all[3].TTFT.P50 != 410 || all[5].TTFTP50Runs != nil || all[1].TTFTP50Runs != nil {
		t.Fatalf("ran %v; rows %+v", f.calls, all)
	}
	boom := errors.New("boom")
	all[3] = goalRow(rnd, "least_queue", 157.4, 400, 0, 0, 1)
	err := repeatJudged(all, 2, rnd, 3, runsContenders, func(fleetContender, float64) (fleetRow, error) { return fleetRow{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
}

// A median row shows its runs in the report's table.
func TestFleetTableShowsRuns(t *testing.T) {
	m := medianRun([]fleetRow{goalRow("multi-turn", "cacheaware", 358.9, 281, 0, 0, 1), goalRow("multi-turn", "cacheaware", 358.9, 266, 0, 0, 1), goalRow("multi-turn", "cacheaware", 358.9, 277, 0, 0, 1)})
	if table := fleetTable([]fleetRow{m}, "multi-turn"); !strings.Contains(table, "| cacheaware | 358.9 | 277 ms (median of 3 runs: 266 ms to 281 ms) |") {
		t.Fatalf("table:\n%s", table)
	}
	rep := &fleetReport{Workloads: []string{"multi-turn"}, Rows: []fleetRow{m}, Goals: []fleetGoal{{What: "x", Judged: true}}, JudgedRuns: 3}
	if md := rep.markdown(); !strings.Contains(md, "each of round_robin, least_queue, cacheaware at the rate judged, is the median of 3 runs") {
		t.Fatalf("the report does not say the goals are judged on medians:\n%s", md)
	}
	rep.JudgedRuns = 1
	if md := rep.markdown(); strings.Contains(md, "at the rate judged, is the median") {
		t.Fatalf("one run each, yet the report speaks of medians:\n%s", md)
	}
}
