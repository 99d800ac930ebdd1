package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Harness honesty (issue 12): a run measures a proxy only when that proxy
// is the bottleneck. A proxy that idles part of the time is being starved
// (by the load generator, the upstream, or another process on its core),
// and its req/s then says nothing about what it costs. So every run
// records how busy the proxy's processes kept one core (CPU time / wall
// time) and how busy its pinned core was in total (/proc/stat), and a run
// where the proxy was below minProxyBusy is marked not comparable and
// left out of every ratio.

// minProxyBusy is the share of one core the proxy under test must use for
// a run to count (90 %).
const minProxyBusy = 0.90

// minCeiling is how much faster than the fastest proxy `direct` (wrk
// against the upstream alone) must be for the upstream and the load
// generator to be ruled out as the bottleneck.
const minCeiling = 1.5

// coreTicks is one CPU's line of /proc/stat: busy and total jiffies.
type coreTicks struct{ Busy, Total int64 }

// parseCoreTicks finds "cpuN user nice system idle iowait irq softirq
// steal …" in the text of /proc/stat (for cpu < 0, the machine's line,
// "cpu …", the sum over its CPUs) and returns its busy time (all but idle
// and iowait) and total.
func parseCoreTicks(b []byte, cpu int) (coreTicks, error) {
	name := "cpu"
	if cpu >= 0 {
		name += strconv.Itoa(cpu)
	}
	prefix := name + " "
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 4 {
			return coreTicks{}, fmt.Errorf("benchmarks: /proc/stat: %s has %d fields, want at least 4", name, len(f))
		}
		var t coreTicks
		// Guest time (fields 9 and 10) is already inside user and nice.
		for i, s := range f[:min(len(f), 8)] {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return coreTicks{}, fmt.Errorf("benchmarks: /proc/stat: %s field %d is %q, want a count", name, i+1, s)
			}
			t.Total += v
			if i != 3 && i != 4 { // idle, iowait
				t.Busy += v
			}
		}
		return t, nil
	}
	return coreTicks{}, fmt.Errorf("benchmarks: /proc/stat: no line for %s", name)
}

// readCoreTicks reads CPU cpu's line of /proc/stat (cpu < 0: the
// machine's).
func readCoreTicks(cpu int) (coreTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return coreTicks{}, fmt.Errorf("benchmarks: %w", err)
	}
	return parseCoreTicks(b, cpu)
}

// busyBetween is the busy share of the core between two readings (NaN
// when no time passed).
func busyBetween(a, b coreTicks) float64 {
	if b.Total <= a.Total {
		return math.NaN()
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

// judge decides whether s counts: a proxy (anything but direct) must have
// kept its core at least minProxyBusy busy. direct is the ceiling, not a
// proxy: it is never excluded, and its busy share is only reported.
func judge(s *sample, kind string) {
	s.Comparable, s.Why = true, ""
	switch {
	case kind == kindDirect:
	case s.Wrk.Requests == 0:
		s.Comparable, s.Why = false, "no request completed"
	case math.IsNaN(s.ProcBusy) || s.ProcBusy < minProxyBusy:
		s.Comparable = false
		s.Why = fmt.Sprintf("proxy %s of a core busy (< %.0f %%): not the bottleneck", pct(s.ProcBusy), minProxyBusy*100)
	}
}

// ceilingNotes flags, per connection count, a `direct` slower than
// minCeiling × the fastest proxy: the upstream or wrk may have set the
// pace, so that connection count's ratios are suspect. Rows are one
// benchmark's summary.
func ceilingNotes(rows []row) []string {
	var notes []string
	var conns []int
	for _, r := range rows {
		if !slices.Contains(conns, r.Conns) {
			conns = append(conns, r.Conns)
		}
	}
	for _, cn := range conns {
		var direct *row
		var fast *row
		for i := range rows {
			r := &rows[i]
			if r.Conns != cn || math.IsNaN(r.RPS.Median) {
				continue
			}
			if r.Contender == kindDirect {
				direct = r
			} else if fast == nil || r.RPS.Median > fast.RPS.Median {
				fast = r
			}
		}
		switch {
		case fast == nil:
		case direct == nil:
			notes = append(notes, fmt.Sprintf("c=%d: `direct` was not run, so nothing shows that the upstream was not the bottleneck", cn))
		case direct.RPS.Median < minCeiling*fast.RPS.Median:
			notes = append(notes, fmt.Sprintf("c=%d: UPSTREAM MAY LIMIT: `direct` %s req/s is only %.2f× the fastest proxy (%s, %s req/s), want ≥ %.1f×; treat this connection count's ratios as suspect",
				cn, kfmt(direct.RPS.Median), direct.RPS.Median/fast.RPS.Median, fast.Contender, kfmt(fast.RPS.Median), minCeiling))
		}
	}
	return notes
}

// ratioCell is a row's ratio against ref (of CPU per request when cpu,
// else of req/s), or "n/c" when the contender ran but no round had both
// it and ref comparable.
func ratioCell(r row, ref string, cpu bool) string {
	if r.Contender == kindDirect {
		return "–" // the ceiling, not a proxy
	}
	s := r.RPSRatio[ref]
	if cpu {
		s = r.CPURatio[ref]
	}
	if s.N == 0 && r.Contender != ref && (r.NotComparable > 0 || r.refNC[ref]) {
		return "n/c"
	}
	return ratio(s)
}

// pct renders a share as a percentage ("–" for NaN).
func pct(v float64) string {
	if math.IsNaN(v) || v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", v*100)
}

// busyCell is a row's busy column: the proxy's median share of a core,
// its pinned core's, and how many runs were excluded.
func busyCell(r row) string {
	s := pct(r.Busy.Median)
	if r.CoreBusy.N > 0 {
		s += " / " + pct(r.CoreBusy.Median)
	}
	if r.NotComparable > 0 {
		s += fmt.Sprintf(" (%d of %d runs not comparable)", r.NotComparable, r.Busy.N)
	}
	return s
}

// ncNote is the progress line's mark for a run that does not count.
func ncNote(s sample) string {
	if s.Comparable {
		return ""
	}
	return "  NOT COMPARABLE: " + s.Why
}

// proxyCoreTicks reads the pinned proxy core's /proc/stat line; it fails
// when the proxy is not pinned.
func (e *env) proxyCoreTicks() (coreTicks, error) {
	if len(e.pinProxy) == 0 {
		return coreTicks{}, errors.New("benchmarks: proxy not pinned")
	}
	return readCoreTicks(e.proxyCPU)
}

// notComparableNotes lists the runs judged not comparable, for the report.
func notComparableNotes(samples []sample) []string {
	var notes []string
	for _, s := range samples {
		if !s.Comparable {
			notes = append(notes, fmt.Sprintf("NOT COMPARABLE, left out of every ratio: %s round %d c=%d %s: %s (its core %s busy)",
				s.Bench, s.Round+1, s.Conns, s.Contender, s.Why, pct(s.CoreBusy)))
		}
	}
	return notes
}

// loadAverage is the 1-minute load average from /proc/loadavg, or
// "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return parseLoadAverage(string(b))
}

// parseLoadAverage returns the first field of /proc/loadavg's text.
func parseLoadAverage(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "unknown"
	}
	if _, err := strconv.ParseFloat(f[0], 64); err != nil {
		return "unknown"
	}
	return f[0]
}
