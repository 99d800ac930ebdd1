package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// sample is one wrk run of one contender in one round.
type sample struct {
	Bench     string // "proxy" (the main table) or "plugins"
	Contender string
	Conns     int
	Round     int
	Order     int // position within its round and connection count
	Wrk       WrkResult
	// CPUMicros is the CPU time (user+system) the contender's processes
	// used during the run; CPUPerReq divides it by wrk's request count.
	CPUMicros float64
	CPUPerReq float64
	// ProcBusy is CPUMicros over the run's wall time: the share of one
	// core the contender's processes used. CoreBusy is how busy the
	// proxy's pinned core was in total over the run, whoever used it
	// (/proc/stat; -1 when unknown: no pinning). Comparable is false when a proxy
	// was not the bottleneck (judge, honest.go); Why says why.
	ProcBusy, CoreBusy float64
	Comparable         bool
	Why                string `json:",omitempty"`
	// Log is what the contender wrote while a run with errors went on.
	Log string `json:",omitempty"`
}

// stat is a median with its range over rounds.
type stat struct {
	Median, Min, Max float64
	N                int
}

func newStat(v []float64) stat {
	if len(v) == 0 {
		return stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// row summarises one contender at one connection count.
type row struct {
	Contender string
	Conns     int
	RPS       stat
	P50, P99  stat // milliseconds
	CPU       stat // µs per request
	Errors    int64
	Empty     int // runs that completed no request at all (a stalled contender)
	// Busy and CoreBusy are the medians of the runs' ProcBusy and
	// CoreBusy; NotComparable counts runs judged not comparable, which
	// enter no ratio.
	Busy, CoreBusy stat
	NotComparable  int
	refNC          map[string]bool // references not comparable in a round this row was
	// Per-round ratios, then their median: RPS and CPU/request of this
	// contender over the reference measured in the same round (NaN when
	// the reference did not run).
	RPSRatio map[string]stat
	CPURatio map[string]stat
}

// summarize builds one row per contender and connection count of bench,
// with ratios against each reference contender measured in the same round.
func summarize(samples []sample, bench string, contenders []string, conns []int, refs []string) []row {
	type key struct {
		name         string
		conns, round int
	}
	by := map[key]sample{}
	for _, s := range samples {
		if s.Bench == bench {
			by[key{s.Contender, s.Conns, s.Round}] = s
		}
	}
	var rows []row
	for _, cn := range conns {
		for _, name := range contenders {
			var rps, p50, p99, cpu, busy, core []float64
			ratios := map[string][]float64{}
			cpuRatios := map[string][]float64{}
			r := row{Contender: name, Conns: cn, RPSRatio: map[string]stat{}, CPURatio: map[string]stat{}, refNC: map[string]bool{}}
			for k, s := range by {
				if k.name != name || k.conns != cn {
					continue
				}
				rps = append(rps, s.Wrk.RPS)
				p50 = append(p50, ms(s.Wrk.P50))
				p99 = append(p99, ms(s.Wrk.P99))
				cpu = append(cpu, s.CPUPerReq)
				busy = append(busy, s.ProcBusy)
				if s.CoreBusy >= 0 {
					core = append(core, s.CoreBusy)
				}
				r.Errors += s.Wrk.Errors()
				if s.Wrk.Requests == 0 {
					r.Empty++
				}
				if !s.Comparable {
					r.NotComparable++
					continue
				}
				for _, ref := range refs {
					rs, ok := by[key{ref, cn, k.round}]
					if ok && !rs.Comparable {
						r.refNC[ref] = true
					}
					if ok && rs.Wrk.RPS > 0 && rs.Comparable {
						ratios[ref] = append(ratios[ref], s.Wrk.RPS/rs.Wrk.RPS)
						if rs.CPUPerReq > 0 {
							cpuRatios[ref] = append(cpuRatios[ref], s.CPUPerReq/rs.CPUPerReq)
						}
					}
				}
			}
			if len(rps) == 0 {
				continue
			}
			r.RPS, r.P50, r.P99, r.CPU = newStat(rps), newStat(p50), newStat(p99), newStat(cpu)
			r.Busy, r.CoreBusy = newStat(busy), newStat(core)
			for _, ref := range refs {
				r.RPSRatio[ref] = newStat(ratios[ref])
				r.CPURatio[ref] = newStat(cpuRatios[ref])
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// proxyTable renders the main table (proxyColumns).
func proxyTable(rows []row) string { return renderTable(proxyColumns, rows) }

// pluginTable renders the plugin-chain table (pluginColumns).
func pluginTable(rows []row) string { return renderTable(pluginColumns, rows) }

// errCell is the errors column: socket errors plus non-2xx answers, and
// the runs that completed nothing.
func errCell(r row) string {
	if r.Empty > 0 {
		return fmt.Sprintf("%d, %d empty run(s)", r.Errors, r.Empty)
	}
	return fmt.Sprint(r.Errors)
}

func kfmt(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func ratio(s stat) string {
	if s.N == 0 || math.IsNaN(s.Median) {
		return "–"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// report is everything written to results-latest.md and .json.
type report struct {
	Date       time.Time
	Command    string
	Machine    []string
	Layout     string
	Settings   []string
	Notes      []string
	Guests     []string
	Samples    []sample
	ProxyRows  []row
	PluginRows []row
	Streams    []streamResult
	Chart      string // file name next to the report; empty if none
	// Started lists each contender's command line and configuration,
	// with the scratch directory shown as <tmp>.
	Started []startedContender
}

type startedContender struct{ Name, Command, Config string }

// machineInfo describes the host: CPUs, model, memory, kernel and the
// versions of the tools involved. Values it cannot read say "unknown".
func machineInfo() []string {
	model, mem := "unknown", "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				mem = strings.TrimSpace(v)
			}
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return []string{
		fmt.Sprintf("CPUs (nproc): %s", cmdLine("nproc")),
		"CPU model: " + model,
		"memory: " + mem,
		"kernel: " + kernel,
		"Go: " + runtime.Version(),
		"nginx: " + cmdLine("nginx", "-v"),
		"HAProxy: " + cmdLine("haproxy", "-v"),
		"wrk: " + cmdLine("wrk", "-v"),
	}
}

// cmdLine runs a version command and returns the first line of its output
// (stdout or stderr; wrk -v exits 1), or "not installed".
func cmdLine(name string, args ...string) string {
	if _, err := exec.LookPath(name); err != nil {
		return "not installed"
	}
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "unknown"
	}
	return line
}

// markdown renders the report.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Sluice benchmark results\n\nDate: %s\n\n", r.Date.UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString("## Machine\n\n")
	for _, m := range r.Machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	b.WriteString("\n## Method\n\n")
	fmt.Fprintf(&b, "Command: `%s`\n\n", r.Command)
	fmt.Fprintf(&b, "- CPU layout: %s\n", r.Layout)
	for _, s := range r.Settings {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	for _, g := range r.Guests {
		fmt.Fprintf(&b, "- %s\n", g)
	}
	if gs := goals(r); len(gs) > 0 {
		fmt.Fprintf(&b, "\n## Goals (issues 12 and 10)\n\nThe req/s and CPU/request rows use comparable runs only (n/c: none). The SSE rows cannot be gated that way (a proxy that keeps up with its streams is not saturated): trust them only when the load average in the notes shows a quiet machine. The details are in the tables below.\n\n%s", goalsTable(gs))
	}
	if len(r.ProxyRows) > 0 {
		b.WriteString("\n## Proxies\n\nMedians over rounds with min–max; ratios are computed per round against the reference measured in the same round, then their median is shown. CPU µs/req is user+system time of the contender's processes (for `direct`, of the upstream itself) divided by completed requests. " +
			"CPU busy is that time over the run's wall time (the share of one core the contender used), then how busy the proxy's pinned core was in total (/proc/stat). " +
			"A run where a proxy used less than 90 % of its core is NOT COMPARABLE (the proxy was not the bottleneck): it stays in the medians but enters no ratio; a ratio cell with no comparable round reads n/c.\n\n")
		b.WriteString(proxyTable(r.ProxyRows))
		if r.Chart != "" {
			fmt.Fprintf(&b, "\n![req/s and p99 per contender](%s)\n", r.Chart)
		}
	}
	if len(r.PluginRows) > 0 {
		b.WriteString("\n## Plugin chains\n\nSluice with 0, 1 and 3 copies of the headers-only plugin (`-x3` = three copies chained); ratios against Sluice without plugins in the same round.\n\n")
		b.WriteString(pluginTable(r.PluginRows))
	}
	if len(r.Streams) > 0 {
		b.WriteString("\n## Streaming (SSE)\n\n")
		b.WriteString(streamTable(r.Streams))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(r.Started) > 0 {
		b.WriteString("\n## Contender commands and configurations\n")
		for _, c := range r.Started {
			fmt.Fprintf(&b, "\n<details><summary>%s</summary>\n\n```\n%s\n```\n", c.Name, c.Command)
			if c.Config != "" {
				fmt.Fprintf(&b, "\n```\n%s\n```\n", strings.TrimRight(c.Config, "\n"))
			}
			b.WriteString("\n</details>\n")
		}
	}
	return b.String()
}

// write stores results-latest.md and results-latest.json in dir.
func (r *report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("benchmarks: %w", err)
	}
	md := filepath.Join(dir, "results-latest.md")
	if err := os.WriteFile(md, []byte(r.markdown()), 0o644); err != nil {
		return "", fmt.Errorf("benchmarks: %w", err)
	}
	js, err := json.MarshalIndent(struct {
		Date    time.Time
		Command string
		Machine []string
		Layout  string
		Samples []sample
		Streams []streamResult
	}{r.Date, r.Command, r.Machine, r.Layout, r.Samples, r.Streams}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("benchmarks: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results-latest.json"), js, 0o644); err != nil {
		return "", fmt.Errorf("benchmarks: %w", err)
	}
	return md, nil
}
