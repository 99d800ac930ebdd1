package main

import (
	"context"
	"fmt"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// The fleet's engines keep simulated time by the wall clock, so a run on a
// machine too busy to keep pace measures the machine, not the routing: a
// stalled scheduler stops its simulated clock while the client's keeps
// running. A run is checked after it ends (harnessBound) and, when the
// machine got in the way, repeated, as the proxy benchmark leaves its
// not-comparable runs out of the ratios.

// maxBoxBusy is the share of the machine's CPUs above which a run is
// taken to have waited for a core: engines, Sluice and client share the
// machine, and at this load their wake-ups queue.
const maxBoxBusy = 0.95

// maxStallPerEngineMs is the scheduler stall (sim.Stats.Stalled, wall time
// past the 20 ms the engine catches up) a run may have per engine, on
// average, and still count: 20 ms is at most a step or two of the
// default engine, within the spread of TTFT p50 between identical runs.
const maxStallPerEngineMs = 20

// fleetRepeats is how many times a run the machine got in the way of is
// repeated before its last attempt is kept, marked.
const fleetRepeats = 2

// harnessBound says why a run's figures are the machine's rather than
// the engines' (engines is how many there were), or "" when they are not.
func harnessBound(r fleetRow, engines int) string {
	switch {
	case r.BoxBusy >= maxBoxBusy:
		return fmt.Sprintf("the machine's CPUs were %s busy (≥ %.0f %%)", pct(r.BoxBusy), maxBoxBusy*100)
	case engines > 0 && r.StalledMs > maxStallPerEngineMs*float64(engines):
		return fmt.Sprintf("the engines' schedulers stalled %.0f ms in all (> %d ms per engine)", r.StalledMs, maxStallPerEngineMs)
	}
	return ""
}

// checkedRun calls run until its row passes harnessBound or fleetRepeats
// repeats are spent, and returns the last row with Repeats (and, when it
// still failed, HarnessBound) set. logf hears every repeat.
func checkedRun(engines int, run func() (fleetRow, error), logf func(string, ...any)) (fleetRow, error) {
	for i := 0; ; i++ {
		row, err := run()
		if err != nil {
			return row, err
		}
		row.Repeats = i
		why := harnessBound(row, engines)
		if why == "" {
			return row, nil
		}
		if i == fleetRepeats {
			row.HarnessBound = why
			logf("benchmarks: fleet %s %s at %g req/s: %s, and still after %d repeats; kept, marked", row.Workload, row.Contender, row.Rate, why, i)
			return row, nil
		}
		logf("benchmarks: fleet %s %s at %g req/s: %s; repeating the run", row.Workload, row.Contender, row.Rate, why)
	}
}

// runChecked is fleetRun through checkedRun.
func (e *fleetEnv) runChecked(ctx context.Context, c fleetContender, wl workload.Spec, rate float64) (fleetRow, error) {
	return checkedRun(e.o.engines, func() (fleetRow, error) { return e.fleetRun(ctx, c, wl, rate) }, logf)
}
