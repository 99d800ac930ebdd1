package main

import (
	"bufio"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fleetRow is the summary of one run: one contender, one workload, one
// request rate. Times are in simulated milliseconds (wall × time scale).
type fleetRow struct {
	Workload  string  `json:"workload"`
	Contender string  `json:"contender"`
	Rate      float64 `json:"rate"` // requests per simulated second offered
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	TTFT      pcts    `json:"ttft_ms"`
	E2E       pcts    `json:"e2e_ms"`
	// OutTokS is output tokens per simulated second, from the first
	// request sent to the last one finished.
	OutTokS float64 `json:"output_tokens_per_s"`
	// HitRate is the fleet's prefix-cache hit rate, Σhits / Σqueries over
	// the engines' counters; NaN (null in JSON) when they export none.
	HitRate float64 `json:"-"`
	// HitRateJSON is HitRate for JSON, which has no NaN: nil for n/a.
	HitRateJSON *float64 `json:"prefix_hit_rate"`
	// PerEngine is the requests each engine received; Spread is max/mean.
	PerEngine []int64 `json:"per_engine"`
	Spread    float64 `json:"spread"`
	FirstErr  string  `json:"first_error,omitempty"`
	// SluiceFailures are Sluice's non-zero plugin failure and stream cut
	// series after a run with errors (why requests failed), and the tail
	// of its log; empty for a clean run.
	SluiceFailures []string `json:"sluice_failures,omitempty"`
	// PluginUs is the time the contender's plugin spent in its callbacks
	// during the load per request, in real (not simulated) microseconds:
	// the growth of Sluice's sluice_plugin_call_duration_seconds_sum over
	// the run (the plugin's start left out) over the requests sent, so
	// wall time, waits for a core included; 0 without a plugin.
	PluginUs float64 `json:"plugin_us_per_request,omitempty"`
	// TTFTMean is the mean TTFT the client saw and EngineTTFTMean the
	// engines' own (from a request's arrival at an engine to its first
	// token), in simulated ms; the difference is the time outside the
	// engines: Sluice, the plugin, the client, the loopback, and stalls.
	TTFTMean       float64 `json:"ttft_mean_ms"`
	EngineTTFTMean float64 `json:"engine_ttft_mean_ms"`
	// BoxBusy is the share of the machine's CPUs busy during the load
	// (/proc/stat), -1 when unknown; StalledMs the wall milliseconds the
	// engines' schedulers stalled and forgave (sim.Stats.Stalled), summed
	// over the engines. See harnessBound.
	BoxBusy   float64 `json:"box_busy"`
	StalledMs float64 `json:"engine_stalled_ms"`
	// Repeats is how many earlier attempts of this run harnessBound
	// rejected; HarnessBound says why this one is the machine's too (it
	// was kept after fleetRepeats repeats), "" when it is not.
	Repeats      int    `json:"repeats,omitempty"`
	HarnessBound string `json:"harness_bound,omitempty"`
	// Decisions are the plugin's decisions by reason over the run
	// (cacheaware: prefix, session, least_load, overload), nil for a
	// contender without them. With one prefix per group, least_load
	// beyond the groups is a group split across engines.
	Decisions map[string]float64 `json:"plugin_decisions,omitempty"`
	// TTFTP50Runs is, for a row that is the median of several runs
	// (fleet_runs.go), every run's TTFT p50, ascending; nil for one run.
	TTFTP50Runs []float64 `json:"ttft_p50_runs_ms,omitempty"`
}

// decisionsNote is the log's tail for a row's plugin decisions, in
// reason order.
func decisionsNote(d map[string]float64) string {
	if len(d) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(d))
	var b strings.Builder
	b.WriteString("; decisions")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s %.0f", k, d[k])
	}
	return b.String()
}

// summarizeFleet turns the results of a run into a row. perEngine are the
// requests each engine received; hits and queries the sums of the engines'
// prefix-cache counters (queries < 0: not exported).
func summarizeFleet(results []fleetResult, timeScale float64, perEngine []int64, hits, queries float64) fleetRow {
	var r fleetRow
	var ttft, e2e []float64
	var ttftSum float64
	var tokens int
	var first, last time.Duration = -1, 0
	sim := func(d time.Duration) float64 { return ms(d) * timeScale }
	for _, res := range results {
		r.Requests++
		if res.Err != "" {
			r.Errors++
			if r.FirstErr == "" {
				r.FirstErr = res.Err
			}
			continue
		}
		ttft = append(ttft, sim(res.TTFT))
		ttftSum += sim(res.TTFT)
		e2e = append(e2e, sim(res.E2E))
		tokens += res.OutTokens
		if first < 0 || res.Sent < first {
			first = res.Sent
		}
		last = max(last, res.Sent+res.E2E)
	}
	if len(ttft) > 0 {
		r.TTFTMean = ttftSum / float64(len(ttft))
	}
	r.TTFT, r.E2E = percentiles(ttft), percentiles(e2e)
	if span := last - first; first >= 0 && span > 0 {
		r.OutTokS = float64(tokens) / (span.Seconds() * timeScale)
	}
	r.PerEngine = perEngine
	r.Spread = loadSpread(perEngine)
	r.HitRate = math.NaN()
	if queries > 0 {
		r.HitRate = hits / queries
	} else if queries == 0 {
		r.HitRate = 0
	}
	if !math.IsNaN(r.HitRate) {
		h := r.HitRate
		r.HitRateJSON = &h
	}
	return r
}

// loadSpread is max/mean of the per-engine request counts: 1 is a perfect
// balance, n means one engine of n took everything. 0 when no request
// reached any engine.
func loadSpread(perEngine []int64) float64 {
	var sum, top int64
	for _, n := range perEngine {
		sum += n
		top = max(top, n)
	}
	if sum == 0 {
		return 0
	}
	return float64(top) / (float64(sum) / float64(len(perEngine)))
}

// promSum returns the sum of every sample of metric name in the Prometheus
// text exposition b, whatever its labels, and whether there was one. A
// counter also matches under its name plus "_total" (and the reverse), as
// exporters differ on the suffix. Comment lines and other metrics are
// skipped; an unparsable value makes the sample not count.
func promSum(b string, name string) (float64, bool) {
	alt := strings.TrimSuffix(name, "_total")
	if alt == name {
		alt = name + "_total"
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ \t")
		if end < 0 {
			continue
		}
		if n := line[:end]; n != name && n != alt {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			close := strings.LastIndexByte(rest, '}')
			if close < 0 {
				continue
			}
			rest = rest[close+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || math.IsNaN(v) {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// Names of the vLLM prefix-cache counters (in tokens).
const (
	metricPrefixHits    = "vllm:prefix_cache_hits_total"
	metricPrefixQueries = "vllm:prefix_cache_queries_total"
)

// hitCell formats a hit rate.
func hitCell(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %%", 100*v)
}

// fleetTable renders the rows of one workload as a Markdown table.
func fleetTable(rows []fleetRow, wl string) string {
	var b strings.Builder
	b.WriteString("| policy | rate (req/s) | TTFT p50 | TTFT p99 | e2e p50 | e2e p99 | output tok/s | prefix hit | load max/mean | plugin µs/req | errors | outside engines, box busy |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		if r.Workload != wl {
			continue
		}
		errs := strconv.Itoa(r.Errors)
		if r.Errors > 0 {
			errs += " (" + tail(r.FirstErr, 60) + ")"
		}
		fmt.Fprintf(&b, "| %s | %g | %s | %s | %s | %s | %.0f | %s | %.2f | %s | %s/%d | %s |\n",
			r.Contender, r.Rate, msCell(r.TTFT.P50)+runsCell(r), msCell(r.TTFT.P99), msCell(r.E2E.P50), msCell(r.E2E.P99),
			r.OutTokS, hitCell(r.HitRate), r.Spread, usCell(r.PluginUs), errs, r.Requests, harnessCell(r))
	}
	return b.String()
}

// harnessCell is what a row says about the machine: the mean TTFT spent
// outside the engines, the CPUs' busy share, stalls, repeats.
func harnessCell(r fleetRow) string {
	s := fmt.Sprintf("%.1f ms, %s", r.TTFTMean-r.EngineTTFTMean, pct(r.BoxBusy))
	if r.StalledMs > 0 {
		s += fmt.Sprintf(", stalls %.0f ms", r.StalledMs)
	}
	if r.Repeats > 0 {
		s += fmt.Sprintf(", repeated %d×", r.Repeats)
	}
	if r.HarnessBound != "" {
		s += " **machine-bound: " + r.HarnessBound + "**"
	}
	return s
}

// usCell formats a plugin's microseconds per request; "—" for none.
func usCell(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f µs", v)
}

// msCell formats milliseconds, switching to seconds from 10 s.
func msCell(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// fleetReport is the whole fleet run, for fleet-latest.md and .json.
type fleetReport struct {
	Date      time.Time  `json:"date"`
	Command   string     `json:"command"`
	Commit    string     `json:"commit"`
	Machine   []string   `json:"machine"`
	Engines   string     `json:"engines"`
	Settings  []string   `json:"settings"`
	Notes     []string   `json:"notes"`
	Workloads []string   `json:"workloads"`
	Rows      []fleetRow `json:"rows"`
	// HitBounds is the shared-prefix workload's hit-rate ceiling and
	// round robin's rate without queueing (nil: workload not run).
	HitBounds *hitBounds `json:"shared_prefix_hit_bounds,omitempty"`
	// Ceilings are the workloads' hit-rate ceilings, by workload: the
	// most any router gets (fleet_ceiling.go); shared-prefix's is
	// HitBounds.Grouped.
	Ceilings map[string]float64 `json:"hit_rate_ceilings,omitempty"`
	// Searches are the searches for the rate the goals are judged at
	// (fleet_search.go), one per workload searched.
	Searches []fleetSearch `json:"searches,omitempty"`
	// Goals are issue 15's goals judged on Rows (fleet_goals.go).
	Goals []fleetGoal `json:"goals,omitempty"`
	// JudgedRuns is -fleet-judged-runs: how many runs each search probe
	// and each goal contender's row at the rate judged is the median of.
	JudgedRuns int `json:"judged_runs,omitempty"`
}

// markdown renders the report.
func (r *fleetReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Routing quality (fleet)\n\n%s UTC%s.\n\n```sh\n%s\n```\n\n", r.Date.UTC().Format("2006-01-02 15:04"), r.Commit, r.Command)
	fmt.Fprintf(&b, "**Engines:** %s.\n\n", r.Engines)
	b.WriteString("Times are simulated (wall time × the engines' time scale); rates are requests per simulated second offered with Poisson arrivals; " +
		"prefix hit is Σ`vllm:prefix_cache_hits_total` / Σ`vllm:prefix_cache_queries_total` over the engines (n/a: the engines export none); " +
		"load max/mean is the most requests any engine received over the mean (1.00 = even); " +
		"plugin µs/req is the time the plugin's callbacks took during the load per request, in real microseconds, waits for a core included (—: no plugin). " +
		"Wall-time costs outside the engines (Sluice, the client, the loopback) are multiplied by the time scale too, so a few simulated milliseconds of every TTFT are harness: " +
		"the last column gives them (the mean TTFT the client saw less the engines' own mean TTFT, from a request's arrival at an engine), with how busy the machine's CPUs were during the load and the time the engines' schedulers stalled. " +
		fmt.Sprintf("A run with the CPUs ≥ %.0f %% busy or stalls over %d ms per engine is repeated, at most %d times (machine-bound: kept after that).", maxBoxBusy*100, maxStallPerEngineMs, fleetRepeats) +
		"\n\n![TTFT p50 against request rate](fleet-chart.png)\n\n")
	for _, s := range r.Settings {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	for _, s := range r.Machine {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	for _, s := range r.Notes {
		fmt.Fprintf(&b, "- note: %s\n", s)
	}
	if len(r.Goals) > 0 {
		fmt.Fprintf(&b, "\n## Issue 15's goals (%s)\n\nJudged by the harness on the rows below, at the rate where round robin's TTFT p50 on the workload reaches %d ms: the lowest such rate of the rows, found by a search between the sweep's rates (to %.0f %%; below) when one ran. Higher rates are listed, not judged; no sharing is judged at shared-prefix's rates. The plugin's CPU goal is measured by `BenchmarkPluginHot8KiB`, not here.",
			goalPolicy, goalTTFTms, searchTolerance*100)
		if r.JudgedRuns > 1 {
			fmt.Fprintf(&b, " Each probe of the search, and each of %s at the rate judged, is the median of %d runs by TTFT p50 (its row shows their range).", strings.Join(goalContenders, ", "), r.JudgedRuns)
		}
		b.WriteString("\n\n")
		for _, s := range r.Searches {
			fmt.Fprintf(&b, "- search, %s\n", s.searchLine())
		}
		if len(r.Searches) > 0 {
			b.WriteString("\n")
		}
		b.WriteString(fleetGoalsTable(r.Goals))
	}
	for _, wl := range r.Workloads {
		fmt.Fprintf(&b, "\n## %s\n\n%s", wl, fleetTable(r.Rows, wl))
	}
	return b.String()
}
