package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestHarnessBound(t *testing.T) {
	for _, c := range []struct {
		r    fleetRow
		want string
	}{
		{fleetRow{BoxBusy: 0.6, StalledMs: 0}, ""},
		{fleetRow{BoxBusy: -1, StalledMs: 160}, ""}, // 20 ms per engine: allowed
		{fleetRow{BoxBusy: 0.96}, "CPUs were 96 % busy"},
		{fleetRow{BoxBusy: 0.5, StalledMs: 523}, "stalled 523 ms"},
	} {
		if got := harnessBound(c.r, 8); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("harnessBound(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

// A machine-bound run is repeated up to fleetRepeats times; the first good
// one is kept with its repeats counted, else the last is kept, marked;
// an error ends it at once.
func TestCheckedRun(t *testing.T) {
	attempt := func(busy ...float64) (func() (fleetRow, error), *int) {
		n := 0
		return func() (fleetRow, error) {
			b := busy[min(n, len(busy)-1)]
			n++
			return fleetRow{Contender: "x", BoxBusy: b}, nil
		}, &n
	}
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	run, n := attempt(0.99, 0.5)
	r, err := checkedRun(8, run, logf)
	if err != nil || *n != 2 || r.Repeats != 1 || r.HarnessBound != "" || r.BoxBusy != 0.5 || len(logged) != 1 {
		t.Fatalf("one repeat: %+v after %d runs, %v; logged %q", r, *n, err, logged)
	}
	logged = nil
	run, n = attempt(0.99)
	r, err = checkedRun(8, run, logf)
	if err != nil || *n != 1+fleetRepeats || r.Repeats != fleetRepeats || !strings.Contains(r.HarnessBound, "99 %") || len(logged) != 1+fleetRepeats {
		t.Fatalf("never good: %+v after %d runs, %v; logged %q", r, *n, err, logged)
	}
	boom := errors.New("boom")
	calls := 0
	if _, err := checkedRun(8, func() (fleetRow, error) { calls++; return fleetRow{BoxBusy: 1}, boom }, logf); !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("error: %v after %d calls", err, calls)
	}
}

// A goal judged on a machine-bound row is not met, and says why.
func TestFleetGoalsMachineBound(t *testing.T) {
	mt := "multi-turn"
	rows := []fleetRow{
		goalRow(mt, "round_robin", 370, 1050, 1000, 0.10, 1),
		goalRow(mt, "cacheaware", 370, 200, 1900, 0.61, 1),
	}
	rows[1].HarnessBound = "the machine's CPUs were 99 % busy"
	for _, g := range fleetGoals(rows, nil) {
		if g.Rate != 370 {
			continue
		}
		if g.Met || !strings.Contains(g.Note, "machine-bound") || !strings.Contains(g.Note, "cacheaware's run: the machine's CPUs were 99 % busy") {
			t.Fatalf("goal on a machine-bound run: %+v", g)
		}
	}
}
