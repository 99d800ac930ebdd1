package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestNewStat(t *testing.T) {
	f := func(in []float64, med, lo, hi float64) {
		t.Helper()
		s := newStat(in)
		if s.Median != med || s.Min != lo || s.Max != hi || s.N != len(in) {
			t.Fatalf("newStat(%v) = %+v, want median %v range %v–%v", in, s, med, lo, hi)
		}
	}
	f([]float64{3, 1, 2}, 2, 1, 3)
	f([]float64{4, 1, 3, 2}, 2.5, 1, 4)
	f([]float64{7}, 7, 7, 7)
	in := []float64{3, 1, 2}
	newStat(in)
	if in[0] != 3 {
		t.Fatal("newStat sorted its input")
	}
	if s := newStat(nil); !math.IsNaN(s.Median) || s.N != 0 {
		t.Fatalf("empty: %+v", s)
	}
}

func mkSample(bench, name string, conns, round int, rps, cpu float64) sample {
	return sample{Bench: bench, Contender: name, Conns: conns, Round: round,
		Wrk: WrkResult{RPS: rps, Requests: int64(rps), P50: time.Millisecond, P99: time.Duration(round+1) * time.Millisecond}, CPUPerReq: cpu,
		ProcBusy: 0.97, CoreBusy: 0.99, Comparable: true}
}

// TestSummarizeRatiosPerRound checks that ratios are taken per round and
// then their median, not as a ratio of medians.
func TestSummarizeRatiosPerRound(t *testing.T) {
	var s []sample
	for r, v := range [][2]float64{{100, 150}, {300, 330}, {310, 100}} {
		s = append(s, mkSample("proxy", kindNginx, 50, r, v[0], 10), mkSample("proxy", kindSluice, 50, r, v[1], 20))
	}
	s = append(s, mkSample("plugins", kindSluice, 50, 0, 1, 1)) // other bench: ignored
	rows := summarize(s, "proxy", []string{kindNginx, kindSluice, "absent"}, []int{50}, []string{kindNginx, kindHAProxy})
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	sl := rows[1]
	if sl.Contender != kindSluice || sl.RPS.Median != 150 || sl.RPS.Min != 100 || sl.RPS.Max != 330 {
		t.Fatalf("sluice row %+v", sl)
	}
	if got := sl.RPSRatio[kindNginx]; math.Abs(got.Median-1.1) > 1e-9 || got.N != 3 {
		t.Fatalf("ratio vs nginx %+v, want median of per-round ratios 1.1 (ratio of medians would be 0.5)", got)
	}
	if got := sl.CPURatio[kindNginx]; got.Median != 2 {
		t.Fatalf("CPU ratio %+v, want 2", got)
	}
	if got := sl.RPSRatio[kindHAProxy]; got.N != 0 {
		t.Fatalf("ratio vs absent HAProxy %+v, want none", got)
	}
	if sl.P99.Median != 2 || sl.P99.Max != 3 {
		t.Fatalf("p99 %+v", sl.P99)
	}
	table := proxyTable(rows)
	for _, want := range []string{"| sluice | 50 | 150 (100–330)", "1.10 (0.32–1.50)", "| – |"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
}

func TestReportMarkdown(t *testing.T) {
	var s []sample
	for r := 0; r < 3; r++ {
		s = append(s, mkSample("plugins", kindSluice, 50, r, 1000, 10), mkSample("plugins", "sluice-go-x3", 50, r, 800, 14))
	}
	rep := &report{
		Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Command: "go run ./benchmarks -rounds 3",
		Machine: []string{"CPU model: test"}, Layout: "no pinning", Notes: []string{"a note"},
		Started:    []startedContender{{Name: "nginx", Command: "nginx -c <tmp>/nginx.conf", Config: "worker_processes 1;\n"}},
		PluginRows: summarize(s, "plugins", []string{kindSluice, "sluice-go-x3"}, []int{50}, []string{kindSluice}),
	}
	md := rep.markdown()
	for _, want := range []string{"2026-01-02 03:04 UTC", "`go run ./benchmarks -rounds 3`", "CPU model: test",
		"## Plugin chains", "| sluice-go-x3 | 50 | 800 (800–800)", "0.80 (0.80–0.80)", "1.40", "- a note",
		"<summary>nginx</summary>", "nginx -c <tmp>/nginx.conf", "worker_processes 1;\n```"} {
		if !strings.Contains(md, want) {
			t.Fatalf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "## Proxies") {
		t.Fatal("empty proxy section rendered")
	}
	dir := t.TempDir()
	path, err := rep.write(dir)
	if err != nil || !strings.HasSuffix(path, "results-latest.md") {
		t.Fatalf("write: %q, %v", path, err)
	}
}

func TestMachineInfo(t *testing.T) {
	info := strings.Join(machineInfo(), "\n")
	for _, want := range []string{"CPUs (nproc):", "CPU model:", "memory:", "kernel:", "Go: go", "nginx:", "HAProxy:", "wrk:"} {
		if !strings.Contains(info, want) {
			t.Fatalf("machine info lacks %q:\n%s", want, info)
		}
	}
}

func TestErrorNotes(t *testing.T) {
	ok := mkSample("proxy", kindSluice, 50, 0, 100, 1)
	bad := mkSample("proxy", "sluice-as", 256, 1, 100, 1)
	bad.Wrk.Non2xx, bad.Wrk.Timeouts, bad.Log = 50, 2, "warn: plugin failed\nagain"
	empty := mkSample("proxy", "sluice-as", 256, 2, 0, 0)
	notes := errorNotes([]sample{ok, bad, empty})
	if len(notes) != 2 || !strings.Contains(notes[1], "stalled") {
		t.Fatalf("notes %q", notes)
	}
	rows := summarize([]sample{bad, empty}, "proxy", []string{"sluice-as"}, []int{256}, nil)
	if got := errCell(rows[0]); got != "52, 1 empty run(s)" {
		t.Fatalf("errors cell %q", got)
	}
	for _, want := range []string{"proxy round 2 c=256 sluice-as", "timeout 2", "non-2xx 50 of 100", "plugin failed ⏎ again"} {
		if !strings.Contains(notes[0], want) {
			t.Fatalf("note %q lacks %q", notes[0], want)
		}
	}
}
