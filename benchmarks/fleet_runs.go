package main

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// The goals are judged on medians of runs. Near the rate they are judged
// at, round robin's multi-turn TTFT p50 is flat around 1 s (its rounds
// wait for their sessions' earlier rounds, so what is in flight is capped
// by the sessions) and one run's p50 moves by ±3 % from one run to the
// next, while cacheaware's rises by ~15 % over the same few req/s. One run
// per point made which side of 1 s a probe fell on, and so the verdict, a
// matter of that noise. So each probe of the search runs round robin
// judgedRuns times and the bisection follows the median, and at the rate
// judged each contender the goals compare (goalContenders) runs
// judgedRuns times; its row is then the run with the median TTFT p50,
// carrying every run's p50 (fleetRow.TTFTP50Runs).

// defaultJudgedRuns is -fleet-judged-runs' default.
const defaultJudgedRuns = 5

// maxJudgedRuns bounds -fleet-judged-runs.
const maxJudgedRuns = 9

// goalContenders are the contenders the goals compare: only they are run
// again at the rate judged.
var goalContenders = []string{"round_robin", "least_queue", goalPolicy}

// runCount is how many runs row stands for: 1 unless it is a median.
func runCount(r fleetRow) int { return max(1, len(r.TTFTP50Runs)) }

// medianRun returns the run of runs (at least one, each a single run) with
// the median TTFT p50 (the lower middle one for an even count), with
// TTFTP50Runs set to every run's p50, ascending. When any run was
// machine-bound the median is marked too, with that run's reason: its p50
// helped choose the median.
func medianRun(runs []fleetRow) fleetRow {
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b fleetRow) int { return cmp.Compare(a.TTFT.P50, b.TTFT.P50) })
	m := sorted[(len(sorted)-1)/2]
	if len(runs) == 1 {
		return m
	}
	m.TTFTP50Runs = make([]float64, len(sorted))
	for i, r := range sorted {
		m.TTFTP50Runs[i] = r.TTFT.P50
		if m.HarnessBound == "" && r.HarnessBound != "" {
			m.HarnessBound = fmt.Sprintf("run %d of %d: %s", i+1, len(sorted), r.HarnessBound)
		}
	}
	return m
}

// runMedian calls run n times (at least once) and returns medianRun of
// the rows; an error stops it.
func runMedian(n int, run func() (fleetRow, error)) (fleetRow, error) {
	var runs []fleetRow
	for i := 0; i < max(1, n); i++ {
		r, err := run()
		if err != nil {
			return r, err
		}
		runs = append(runs, r)
	}
	return medianRun(runs), nil
}

// judgedWorkload is the workload whose round robin rows name the rate wl
// is judged at: the no-sharing workload borrows shared-prefix's.
func judgedWorkload(wl string) string {
	if wl == workload.KindRandom {
		return workload.KindSharedPrefix
	}
	return wl
}

// goalRates are the rates of rows at which round robin's TTFT p50 on
// workload wl is at least goalTTFTms, ascending: the goals are judged at
// the first.
func goalRates(rows []fleetRow, wl string) []float64 {
	var rates []float64
	for _, r := range rows {
		if r.Workload == wl && r.Contender == "round_robin" && r.TTFT.P50 >= goalTTFTms {
			rates = append(rates, r.Rate)
		}
	}
	slices.Sort(rates)
	return rates
}

// repeatJudged makes the goal contenders' rows of workload wl (rows from
// first on) at the rate its goals are judged at medians of n runs: it
// runs each one's missing runs (run) and puts the median in the row's
// place. A row that is already a median (a probe of the search) is
// kept; a contender without a row at that rate is not run. When round
// robin's median falls under goalTTFTms, the goals move to the next rate
// where it is at or over (goalRates), and that rate's rows are repeated
// in turn. The rate is found in all rows (judgedWorkload: the no-sharing
// workload's is shared-prefix's).
func repeatJudged(all []fleetRow, first int, wl string, n int, contenders []fleetContender, run func(c fleetContender, rate float64) (fleetRow, error)) error {
	if n < 2 {
		return nil
	}
	rows := all[first:]
	for {
		rates := goalRates(all, judgedWorkload(wl))
		if len(rates) == 0 {
			return nil
		}
		ran := false
		for _, c := range contenders {
			if !contains(goalContenders, c.Name) {
				continue
			}
			i := slices.IndexFunc(rows, func(r fleetRow) bool { return r.Workload == wl && r.Contender == c.Name && r.Rate == rates[0] })
			if i < 0 || runCount(rows[i]) > 1 {
				continue
			}
			runs := []fleetRow{rows[i]}
			for len(runs) < n {
				r, err := run(c, rates[0])
				if err != nil {
					return err
				}
				runs = append(runs, r)
			}
			rows[i], ran = medianRun(runs), true
		}
		if !ran {
			return nil
		}
	}
}

// runsCell is what a median row says about its runs: "" for one run.
func runsCell(r fleetRow) string {
	if len(r.TTFTP50Runs) < 2 {
		return ""
	}
	return fmt.Sprintf(" (median of %d runs: %s to %s)", len(r.TTFTP50Runs), msCell(r.TTFTP50Runs[0]), msCell(r.TTFTP50Runs[len(r.TTFTP50Runs)-1]))
}
