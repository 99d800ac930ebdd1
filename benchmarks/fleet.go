package main

// The fleet benchmark (issue 14): 8 simulated inference engines behind
// Sluice, every load-balancing policy and routing plugin, three workloads,
// a sweep of Poisson request rates; it reports what routing changes for
// the client (TTFT, end-to-end latency, output tokens/s) and for the fleet
// (prefix-cache hit rate, spread of load).
//
//	go run ./benchmarks -fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
	"github.com/sluice-proxy/sluice/sim"
)

// fleetOptions are the -fleet-* flags.
type fleetOptions struct {
	engines     int
	rates       []float64 // requests per simulated second; nil: defaultFleetRates
	timeScale   float64
	maxRequests int
	workloads   []string // empty: all
	contenders  []string // empty: all
	seed        int64
	runTimeout  time.Duration
	// search: after a workload's sweep, search for the rate where round
	// robin's TTFT p50 reaches goalTTFTms (fleet_search.go).
	search bool
	// judgedRuns is how many runs each search probe and each goal
	// contender at the rate judged is the median of (fleet_runs.go).
	judgedRuns int
}

// fleetFlags registers the -fleet-* flags on fs; finish validates them
// after fs.Parse.
func fleetFlags(fs *flag.FlagSet) (finish func() (fleetOptions, error)) {
	var o fleetOptions
	fs.IntVar(&o.engines, "fleet-engines", 8, "simulated engines behind Sluice")
	rates := fs.String("fleet-rates", "", "comma-separated request rates (per simulated second); default: 0.25–7.5× the estimated capacity without cache hits on shared-prefix")
	fs.Float64Var(&o.timeScale, "fleet-time-scale", defaultFleetEngine.TimeScale, "simulated seconds per wall second")
	fs.IntVar(&o.maxRequests, "fleet-requests", defaultFleetRequests(), "requests per run (bounded by the workload's size; the default sends every workload whole)")
	var optional []string
	for _, w := range fleetOptionalWorkloads {
		optional = append(optional, w.Name)
	}
	wls := fs.String("fleet-workloads", "", "comma-separated workloads (default all but the optional "+strings.Join(optional, ", ")+"): "+strings.Join(fleetWorkloadNames(), ", "))
	cs := fs.String("fleet-policies", "", "comma-separated contenders (default all): "+strings.Join(fleetContenderNames(), ", "))
	fs.Int64Var(&o.seed, "fleet-seed", 1, "workload and engine seed")
	fs.DurationVar(&o.runTimeout, "fleet-run-timeout", 2*time.Minute, "wall-time bound of one run")
	fs.BoolVar(&o.search, "fleet-search", true, "after shared-prefix's and multi-turn's sweeps, bisect with round robin between the sweep's rates for the lowest rate where its TTFT p50 reaches 1 s (to 2 %), run every contender there and judge issue 15's goals there (needs round_robin and cacheaware)")
	fs.IntVar(&o.judgedRuns, "fleet-judged-runs", defaultJudgedRuns, "runs each search probe, and round_robin, least_queue and cacheaware at the rate the goals are judged at, take: their median TTFT p50 is judged (1: one run each)")
	return func() (fleetOptions, error) {
		switch {
		case o.engines < 1 || o.engines > 64:
			return o, fmt.Errorf("benchmarks: -fleet-engines is %d, must be in 1..64", o.engines)
		case !(o.timeScale > 0) || o.timeScale > 1000:
			return o, fmt.Errorf("benchmarks: -fleet-time-scale is %v, must be in (0, 1000]", o.timeScale)
		case o.maxRequests < 1:
			return o, fmt.Errorf("benchmarks: -fleet-requests is %d, must be >= 1", o.maxRequests)
		case o.runTimeout <= 0:
			return o, fmt.Errorf("benchmarks: -fleet-run-timeout is %v, must be > 0", o.runTimeout)
		case o.judgedRuns < 1 || o.judgedRuns > maxJudgedRuns:
			return o, fmt.Errorf("benchmarks: -fleet-judged-runs is %d, must be in 1..%d", o.judgedRuns, maxJudgedRuns)
		}
		if *rates != "" {
			for _, f := range strings.Split(*rates, ",") {
				v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
				if err != nil || !(v > 0) || v > 1e6 {
					return o, fmt.Errorf("benchmarks: -fleet-rates: %q is not a rate in (0, 1e6]", f)
				}
				o.rates = append(o.rates, v)
			}
		}
		var err error
		if o.workloads, err = pickNames("-fleet-workloads", *wls, fleetWorkloadNames()); err != nil {
			return o, err
		}
		if o.contenders, err = pickNames("-fleet-policies", *cs, fleetContenderNames()); err != nil {
			return o, err
		}
		return o, nil
	}
}

// pickNames parses a comma-separated subset of known.
func pickNames(flagName, s string, known []string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if !contains(known, n) {
			return nil, fmt.Errorf("benchmarks: %s: unknown name %q (known: %s)", flagName, n, strings.Join(known, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}

// defaultFleetRequests is the size of the largest workload, so that a run
// at the default -fleet-requests sends any workload whole.
func defaultFleetRequests() int {
	n := 0
	for _, w := range allFleetWorkloads() {
		n = max(n, w.Len())
	}
	return n
}

// allFleetWorkloads is the default workloads, then the optional ones.
func allFleetWorkloads() []workload.Spec {
	return append(slices.Clip(fleetWorkloads), fleetOptionalWorkloads...)
}

func fleetWorkloadNames() []string {
	var ns []string
	for _, w := range allFleetWorkloads() {
		ns = append(ns, w.Name)
	}
	return ns
}

// runsWorkload reports whether the selection names (nil: the default)
// take the workload wl: a default one unless others are named, an
// optional one only when named.
func runsWorkload(names []string, wl workload.Spec) bool {
	if len(names) > 0 {
		return contains(names, wl.Name)
	}
	return slices.ContainsFunc(fleetWorkloads, func(w workload.Spec) bool { return w.Name == wl.Name })
}

func fleetContenderNames() []string {
	var ns []string
	for _, c := range fleetContenders {
		ns = append(ns, c.Name)
	}
	return ns
}

// fleetEngines are running engines, each served on 127.0.0.1.
type fleetEngines struct {
	URLs     []string
	engines  []*sim.Engine
	requests []*atomic.Int64 // completions each engine received
	stop     []func()
}

// startFleetEngines starts n engines of configuration c. Each is wrapped
// to count the completions it receives, which is the load spread.
func startFleetEngines(n int, c fleetEngineConfig) (*fleetEngines, error) {
	fe := &fleetEngines{}
	for i := 0; i < n; i++ {
		eng, err := newFleetEngine(i, c)
		if err != nil {
			fe.Close()
			return nil, err
		}
		h := eng.Handler()
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			eng.Close()
			fe.Close()
			return nil, fmt.Errorf("benchmarks: fleet engine %d: %w", i, err)
		}
		count := &atomic.Int64{}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/") {
				count.Add(1)
			}
			h.ServeHTTP(w, r)
		}), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l) //nolint:errcheck // ErrServerClosed at stop
		fe.URLs = append(fe.URLs, "http://"+l.Addr().String())
		fe.requests = append(fe.requests, count)
		fe.engines = append(fe.engines, eng)
		fe.stop = append(fe.stop, func() { _ = srv.Close(); eng.Close() })
	}
	return fe, nil
}

// Close stops every engine.
func (fe *fleetEngines) Close() {
	for _, s := range fe.stop {
		s()
	}
	fe.stop = nil
}

// Requests returns the completions each engine has received.
func (fe *fleetEngines) Requests() []int64 {
	out := make([]int64, len(fe.requests))
	for i, c := range fe.requests {
		out[i] = c.Load()
	}
	return out
}

// Timing sums what the engines say about time: the wall time their
// schedulers stalled and forgave (sim.Stats.Stalled) and the mean of
// their own simulated TTFTs, from a request's arrival at an engine to its
// first token (0 when none had one).
func (fe *fleetEngines) Timing() (stalled, ttftMean time.Duration) {
	var sum time.Duration
	var n int64
	for _, e := range fe.engines {
		st := e.Stats()
		stalled += st.Stalled
		sum += st.TTFTSum
		n += st.TTFTCount
	}
	if n > 0 {
		ttftMean = sum / time.Duration(n)
	}
	return stalled, ttftMean
}

// PrefixCounters sums the engines' prefix-cache counters from their
// /metrics; queries is -1 when no engine exports them.
func (fe *fleetEngines) PrefixCounters() (hits, queries float64, err error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	queries = -1
	for _, u := range fe.URLs {
		resp, err := hc.Get(u + "/metrics")
		if err != nil {
			return 0, 0, fmt.Errorf("benchmarks: scrape %s/metrics: %w", u, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("benchmarks: scrape %s/metrics: %w", u, err)
		}
		h, _ := promSum(string(b), metricPrefixHits)
		if q, ok := promSum(string(b), metricPrefixQueries); ok {
			queries = max(queries, 0) + q
			hits += h
		}
	}
	return hits, queries, nil
}

// fleetEnv is what every fleet run needs.
type fleetEnv struct {
	repo, tmp string
	procs     *procSet
	sluiceBin string
	plugins   map[string]string // plugin name → built .wasm
	engine    fleetEngineConfig
	o         fleetOptions
}

// fleetRun is one contender on one workload at one rate: fresh engines
// (so every run starts with cold caches), a fresh Sluice, the load, the
// counters.
func (e *fleetEnv) fleetRun(ctx context.Context, c fleetContender, wl workload.Spec, rate float64) (fleetRow, error) {
	n := e.o.maxRequests
	reqs, err := wl.Generate(e.o.seed, n)
	if err != nil {
		return fleetRow{}, err
	}
	engines, err := startFleetEngines(e.o.engines, e.engine)
	if err != nil {
		return fleetRow{}, err
	}
	defer engines.Close()
	port, err := freePort()
	if err != nil {
		return fleetRow{}, err
	}
	cfg, err := fleetSluiceYAML(c, port, engines.URLs, e.engine.TimeScale, e.plugins[c.Plugin], filepath.Join(e.tmp, "plugin-cache"))
	if err != nil {
		return fleetRow{}, err
	}
	path, err := writeFile(e.tmp, "fleet-"+c.Name+".yaml", cfg)
	if err != nil {
		return fleetRow{}, err
	}
	p, err := e.procs.Start("sluice-"+c.Name, exec.Command(e.sluiceBin, "-config", path))
	if err != nil {
		return fleetRow{}, err
	}
	defer e.procs.Stop(p)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP(base+"/ready", http.StatusOK, readyTimeout, p); err != nil {
		return fleetRow{}, fmt.Errorf("%w\nsluice output:\n%s", err, tail(p.Output(), 2000))
	}
	// Let the first scrapes land so least_queue and the pickers see the
	// engines before the first request.
	time.Sleep(3 * fleetScrapeInterval(e.engine.TimeScale))
	// The plugin's callback time before the load (its start, its
	// first ticks), left out of the per-request figure.
	var pluginBefore float64
	if c.Plugin != "" {
		if pluginBefore, err = pluginCallSeconds(base, c.Plugin); err != nil {
			return fleetRow{}, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, e.o.runTimeout)
	defer cancel()
	cpu0, cpuErr := readCoreTicks(-1)
	results := runFleetLoad(rctx, base+"/v1/chat/completions", e.engine.Model, reqs, rate, e.o.seed, e.engine.TimeScale)
	if ctx.Err() != nil {
		return fleetRow{}, ctx.Err()
	}
	cpu1, cpuErr1 := readCoreTicks(-1)
	hits, queries, err := engines.PrefixCounters()
	if err != nil {
		return fleetRow{}, err
	}
	row := summarizeFleet(results, e.engine.TimeScale, engines.Requests(), hits, queries)
	row.Workload, row.Contender, row.Rate = wl.Name, c.Name, rate
	row.BoxBusy = -1
	if b := busyBetween(cpu0, cpu1); cpuErr == nil && cpuErr1 == nil && !math.IsNaN(b) {
		row.BoxBusy = b
	}
	stalled, engineTTFT := engines.Timing()
	row.StalledMs = ms(stalled)
	row.EngineTTFTMean = ms(engineTTFT)
	if c.Plugin != "" && row.Requests > 0 {
		after, err := pluginCallSeconds(base, c.Plugin)
		if err != nil {
			return fleetRow{}, err
		}
		row.PluginUs = (after - pluginBefore) * 1e6 / float64(row.Requests)
		row.Decisions = pluginDecisions(base, c.Plugin, row.Requests-row.Errors)
	}
	if row.Errors > 0 {
		row.SluiceFailures = sluiceFailures(base)
		if out := strings.TrimSpace(tail(p.Output(), 1500)); out != "" {
			row.SluiceFailures = append(row.SluiceFailures, "sluice log: "+out)
		}
		for _, l := range row.SluiceFailures {
			logf("benchmarks: fleet %s %s at %g req/s: %s", wl.Name, c.Name, rate, l)
		}
	}
	return row, nil
}

// failureSeries are the Sluice metrics that say why requests failed: a
// plugin's errors by kind (trap, timeout, memory…), the requests stranded
// on an instance discarded after another request's failure (which then
// fail on their next callback, e.g. "A plugin failed on the response
// body"), and truncated streams by reason.
var failureSeries = []string{"sluice_plugin_errors_total", "sluice_plugin_stranded_requests_total", "sluice_streams_truncated_total"}

// sluiceFailures scrapes Sluice's /metrics at base and returns its
// non-zero failure series, or the scrape's error.
func sluiceFailures(base string) []string {
	text, err := scrapeMetrics(base)
	if err != nil {
		return []string{err.Error()}
	}
	return nonZeroSeries(text, failureSeries)
}

// scrapeMetrics returns the text of Sluice's /metrics at base.
func scrapeMetrics(base string) (string, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return "", fmt.Errorf("benchmarks: scrape %s/metrics: %w", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("benchmarks: scrape %s/metrics: %w", base, err)
	}
	return string(b), nil
}

// pluginCallSeconds returns the time plugin's callbacks have taken so
// far in the Sluice at base (sluice_plugin_call_duration_seconds_sum; 0
// before its first call).
func pluginCallSeconds(base, plugin string) (float64, error) {
	text, err := scrapeMetrics(base)
	if err != nil {
		return 0, err
	}
	v, _ := metricValue(text, `sluice_plugin_call_duration_seconds_sum{plugin="`+plugin+`"}`)
	return v, nil
}

// decisionsFlushWait bounds the wait for a plugin's decision counts to
// reach the requests it routed: a Go plugin adds what it counted to its
// counters on its tick (cacheaware: every metrics_flush_period, 1 s).
const decisionsFlushWait = 3 * time.Second

// pluginDecisions returns the plugin's decisions by reason
// (sluice_wasm_<plugin>_decisions_total{reason=…}, as cacheaware counts
// them), once they add up to at least want or decisionsFlushWait has
// passed; nil for a plugin without them.
func pluginDecisions(base, plugin string, want int) map[string]float64 {
	deadline := time.Now().Add(decisionsFlushWait)
	for {
		text, err := scrapeMetrics(base)
		if err != nil {
			return nil
		}
		d := decisionsIn(text, "sluice_wasm_"+plugin+"_decisions_total")
		var sum float64
		for _, v := range d {
			sum += v
		}
		if d == nil || sum >= float64(want) || time.Now().After(deadline) {
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// decisionsIn returns the samples of metric name in a Prometheus text
// exposition by their reason label (nil when there is none).
func decisionsIn(text, name string) map[string]float64 {
	var d map[string]float64
	for _, line := range strings.Split(text, "\n") {
		labels, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(labels, "} ")
		if !ok {
			continue
		}
		_, reason, ok := strings.Cut(labels, `reason="`)
		if !ok {
			continue
		}
		reason, _, _ = strings.Cut(reason, `"`)
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		if d == nil {
			d = map[string]float64{}
		}
		d[reason] += v
	}
	return d
}

// metricValue returns the value of the series (name and labels exactly
// as exposed) in a Prometheus text exposition.
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// nonZeroSeries returns the lines of a Prometheus text exposition whose
// metric name is one of names and whose value is not zero.
func nonZeroSeries(text string, names []string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || !contains(names, name) {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && v != 0 {
			out = append(out, line)
		}
	}
	return out
}

// buildFleetPlugin builds plugins/<name> for wasip1 into dir.
func buildFleetPlugin(ctx context.Context, repo, dir, name string) (string, error) {
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, "./plugins/"+name)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	logf("benchmarks: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o %s ./plugins/%s", out, name)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("benchmarks: build plugins/%s: %w\n%s", name, err, tail(string(b), 2000))
	}
	return out, nil
}

// runFleet is the whole fleet benchmark: build, every run, the report
// (fleet-latest.md, fleet-latest.json, fleet-chart.png in outDir).
func runFleet(ctx context.Context, o fleetOptions, repoDir, outDir, commandLine string, procs *procSet) (*fleetReport, error) {
	repo, err := findRepo(repoDir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "sluice-fleet-")
	if err != nil {
		return nil, fmt.Errorf("benchmarks: %w", err)
	}
	defer os.RemoveAll(tmp)
	raiseNoFile()
	bin, why, err := buildSluice(ctx, repo, tmp)
	if err != nil {
		return nil, err
	}
	if bin == "" {
		return nil, fmt.Errorf("benchmarks: fleet: %s", why)
	}
	eng := defaultFleetEngine
	eng.TimeScale, eng.Seed = o.timeScale, o.seed
	e := &fleetEnv{repo: repo, tmp: tmp, procs: procs, sluiceBin: bin, plugins: map[string]string{}, engine: eng, o: o}
	contenders, notes := availableFleetContenders(repo, o.contenders)
	for _, c := range contenders {
		if c.Plugin != "" && e.plugins[c.Plugin] == "" {
			if e.plugins[c.Plugin], err = buildFleetPlugin(ctx, repo, tmp, c.Plugin); err != nil {
				return nil, err
			}
		}
	}
	rates := o.rates
	if rates == nil {
		rates = defaultFleetRates(eng, o.engines)
	}
	rep := &fleetReport{Date: time.Now(), Command: commandLine, Commit: gitRev(repo), Machine: fleetMachine(), Engines: fleetEngineKind, Notes: notes, JudgedRuns: o.judgedRuns}
	rep.Settings = []string{
		fmt.Sprintf("%d engines on 127.0.0.1, each: max_num_seqs %d, max_batched_tokens %d, %d blocks of %d tokens, step overhead %v, prefill %v/token, decode %v/sequence; time scale %g (simulated seconds per wall second)",
			o.engines, eng.MaxNumSeqs, eng.MaxBatchedTokens, eng.NumBlocks, eng.BlockSize, eng.StepOverhead, eng.PrefillPerToken, eng.DecodePerSeq, eng.TimeScale),
		fmt.Sprintf("rates %v req/s (simulated); estimated capacity without cache hits on shared-prefix: %.1f req/s", rates,
			fleetCapacity(eng, o.engines, fleetWorkloads[0].SharedPrefix.SystemLen+fleetWorkloads[0].SharedPrefix.QuestionLen, fleetWorkloads[0].SharedPrefix.OutputLen)),
		fmt.Sprintf("at most %d requests per run, seed %d; streamed chat completions (TTFT at the first content event, client side); fresh engines and a fresh Sluice per run", o.maxRequests, o.seed),
		fmt.Sprintf("Sluice: one pool, metrics_path /metrics scraped every %v (wall) for every contender, max_batch_size 1024, max_concurrent_requests 4096", fleetScrapeInterval(eng.TimeScale)),
	}
	for _, wl := range allFleetWorkloads() {
		if !runsWorkload(o.workloads, wl) {
			continue
		}
		rep.Settings = append(rep.Settings, "workload "+describeWorkload(wl))
		rep.Workloads = append(rep.Workloads, wl.Name)
		if wl.SharedPrefix != nil {
			b, err := sharedPrefixHitBounds(ctx, eng, o.engines, wl, o.seed, o.maxRequests)
			if err != nil {
				return nil, err
			}
			if wl.Name == workload.KindSharedPrefix {
				rep.HitBounds = &b
			}
			rep.Ceilings = setCeiling(rep.Ceilings, wl.Name, b.Grouped)
			rep.Settings = append(rep.Settings, fmt.Sprintf("%s hit-rate ceiling: %s, every request sent alone to its group's engine (nothing a router can do gets more, preemptions aside: the first prompt of a group has nothing cached, the others at most their system prompt); round robin's assignment sent the same way: %s",
				wl.Name, hitCell(b.Grouped), hitCell(b.RoundRobin)))
		}
		if wl.MultiTurn != nil {
			c, err := multiTurnCeiling(ctx, eng, o.engines, wl, o.seed, o.maxRequests)
			if err != nil {
				return nil, err
			}
			rep.Ceilings = setCeiling(rep.Ceilings, wl.Name, c)
			rep.Settings = append(rep.Settings, fmt.Sprintf("%s hit-rate ceiling: %s, every session's rounds sent one after another to one engine with their real answers (nothing a router can do gets more, preemptions aside: sessions share nothing, and a round can hit at most its previous round's prompt and answer)",
				wl.Name, hitCell(c)))
		}
		run := func(c fleetContender, rate float64) (fleetRow, error) {
			row, err := e.runChecked(ctx, c, wl, rate)
			if err != nil {
				return row, fmt.Errorf("benchmarks: fleet %s %s at %g req/s: %w", wl.Name, c.Name, rate, err)
			}
			logf("benchmarks: fleet %-13s %-13s %6.1f req/s: TTFT p50 %s p99 %s, %.0f tok/s, hit %s, spread %.2f, plugin %s/req, errors %d/%d; outside the engines %.1f ms, box %s busy, stalls %.0f ms%s",
				wl.Name, c.Name, rate, msCell(row.TTFT.P50), msCell(row.TTFT.P99), row.OutTokS, hitCell(row.HitRate), row.Spread, usCell(row.PluginUs), row.Errors, row.Requests,
				row.TTFTMean-row.EngineTTFTMean, pct(row.BoxBusy), row.StalledMs, decisionsNote(row.Decisions))
			return row, nil
		}
		first := len(rep.Rows)
		for _, rate := range workloadRates(wl.Name, rates, rep.Searches) {
			for _, c := range contenders {
				row, err := run(c, rate)
				if err != nil {
					return nil, err
				}
				rep.Rows = append(rep.Rows, row)
			}
		}
		judges := slices.ContainsFunc(contenders, func(c fleetContender) bool { return c.Name == goalPolicy })
		if o.search && judges && isGoalWorkload(wl.Name) {
			s, add, ok, err := searchGoalRate(rep.Rows[first:], wl.Name, contenders, o.judgedRuns, run)
			if err != nil {
				return nil, err
			}
			if ok {
				logf("benchmarks: fleet search: %s", s.searchLine())
				rep.Searches = append(rep.Searches, s)
				rep.Rows = append(rep.Rows, add...)
				slices.SortStableFunc(rep.Rows[first:], func(a, b fleetRow) int { return cmp.Compare(a.Rate, b.Rate) })
			}
		}
		if judges && hasGoals(wl.Name) {
			if err := repeatJudged(rep.Rows, first, wl.Name, o.judgedRuns, contenders, run); err != nil {
				return nil, err
			}
		}
	}
	rep.Goals = fleetGoals(rep.Rows, rep.Ceilings)
	if outDir != "" {
		if err := rep.write(outDir, fleetNames(contenders)); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// isGoalWorkload reports whether issue 15's goals are judged on workload
// wl at a rate of its own (the no-sharing workload borrows
// shared-prefix's).
func isGoalWorkload(wl string) bool {
	return wl == workload.KindSharedPrefix || wl == workload.KindMultiTurn
}

// hasGoals reports whether any of issue 15's goals is judged on
// workload wl.
func hasGoals(wl string) bool { return isGoalWorkload(wl) || wl == workload.KindRandom }

// workloadRates is the rates workload wl runs at: the sweep's, and for
// the no-sharing workload also the rate shared-prefix's search found
// (its goal is judged there), in order.
func workloadRates(wl string, sweep []float64, searches []fleetSearch) []float64 {
	rates := slices.Clone(sweep)
	if wl != workload.KindRandom {
		return rates
	}
	for _, s := range searches {
		if s.Workload == workload.KindSharedPrefix && !slices.Contains(rates, s.Rate) {
			rates = append(rates, s.Rate)
		}
	}
	slices.Sort(rates)
	return rates
}

// setCeiling records workload wl's hit-rate ceiling in m (made if nil).
func setCeiling(m map[string]float64, wl string, c float64) map[string]float64 {
	if m == nil {
		m = map[string]float64{}
	}
	m[wl] = c
	return m
}

func fleetNames(cs []fleetContender) []string {
	var ns []string
	for _, c := range cs {
		ns = append(ns, c.Name)
	}
	return ns
}

// describeWorkload is one line on a workload's shape.
func describeWorkload(s workload.Spec) string {
	switch {
	case s.SharedPrefix != nil:
		p := s.SharedPrefix
		return fmt.Sprintf("%s: %d groups × %d prompts, system prompt %d words, question %d, output %d tokens (SGLang generated-shared-prefix shape, scaled down)",
			s.Name, p.Groups, p.PromptsPerGroup, p.SystemLen, p.QuestionLen, p.OutputLen)
	case s.MultiTurn != nil:
		m := s.MultiTurn
		return fmt.Sprintf("%s: %d sessions × %d rounds, system prompt %d words, %d words per user turn, output %d tokens; each round carries every earlier round and its real answer, and is ready when the previous one finished; at each Poisson tick one ready round drawn at random goes out (SGLang multi-turn shape, scaled down)",
			s.Name, m.Sessions, m.Turns, m.SystemLen, m.UserLen, m.OutputLen)
	case s.Random != nil:
		r := s.Random
		return fmt.Sprintf("%s: prompts of %d words with nothing shared, output %d tokens", s.Name, r.PromptLen, r.OutputLen)
	}
	return s.Name
}

// write saves fleet-latest.md, fleet-latest.json and fleet-chart.png in dir.
func (r *fleetReport) write(dir string, contenders []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("benchmarks: %w", err)
	}
	if _, err := writeFile(dir, "fleet-latest.md", []byte(r.markdown())); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("benchmarks: fleet json: %w", err)
	}
	if _, err := writeFile(dir, "fleet-latest.json", append(b, '\n')); err != nil {
		return err
	}
	return writeFleetChart(filepath.Join(dir, "fleet-chart.png"), r.Rows, r.Workloads, contenders)
}

// fleetMachine is machineInfo without the tools only the proxy benchmark
// uses.
func fleetMachine() []string {
	var out []string
	for _, l := range machineInfo() {
		if !strings.HasPrefix(l, "nginx") && !strings.HasPrefix(l, "HAProxy") && !strings.HasPrefix(l, "wrk") {
			out = append(out, l)
		}
	}
	return out
}
