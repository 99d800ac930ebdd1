package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseCoreTicks(t *testing.T) {
	stat := []byte("cpu  100 0 50 800 10 0 5 0 0 0\n" +
		"cpu0 40 1 20 300 5 2 3 1 7 0\n" +
		"cpu1 60 0 30 500 5 0 2 0 0 0\n" +
		"cpu10 9 9 9 9 9 9 9 9\n" +
		"intr 1 2 3\n")
	got, err := parseCoreTicks(stat, 0)
	// Busy: user 40 + nice 1 + system 20 + irq 2 + softirq 3 + steal 1; guest (7) is inside user.
	if err != nil || got != (coreTicks{Busy: 67, Total: 372}) {
		t.Fatalf("cpu0: %+v, %v", got, err)
	}
	if got, err := parseCoreTicks(stat, 1); err != nil || got != (coreTicks{Busy: 92, Total: 597}) {
		t.Fatalf("cpu1 (must not match cpu10): %+v, %v", got, err)
	}
	if got, err := parseCoreTicks(stat, -1); err != nil || got != (coreTicks{Busy: 155, Total: 965}) {
		t.Fatalf("the machine's line: %+v, %v", got, err)
	}
	for _, bad := range []struct {
		in   string
		cpu  int
		want string
	}{
		{"cpu0 1 2 3 4\n", 2, "no line for cpu2"},
		{"cpu0 1 2 3 4\n", -1, "no line for cpu"},
		{"cpu 1 2\n", -1, "cpu has 2 fields"},
		{"cpu0 1 2\n", 0, "2 fields"},
		{"cpu0 1 x 3 4\n", 0, `field 2 is "x"`},
		{"cpu0 1 -2 3 4\n", 0, `field 2 is "-2"`},
	} {
		if _, err := parseCoreTicks([]byte(bad.in), bad.cpu); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseCoreTicks(%q, %d) = %v, want an error with %q", bad.in, bad.cpu, err, bad.want)
		}
	}
	if own, err := readCoreTicks(0); err != nil || own.Total <= 0 || own.Busy > own.Total {
		t.Fatalf("this machine's cpu0: %+v, %v", own, err)
	}
	if all, err := readCoreTicks(-1); err != nil || all.Total <= 0 || all.Busy > all.Total {
		t.Fatalf("this machine's total: %+v, %v", all, err)
	}
	if b := busyBetween(coreTicks{10, 100}, coreTicks{55, 150}); b != 0.9 {
		t.Fatalf("busyBetween = %v, want 0.9", b)
	}
	if b := busyBetween(coreTicks{10, 100}, coreTicks{10, 100}); !math.IsNaN(b) {
		t.Fatalf("busyBetween with no time = %v, want NaN", b)
	}
}

// TestJudge checks the rule: a proxy below 90 % of a core was not the
// bottleneck and its run does not count; direct (the ceiling) always does.
func TestJudge(t *testing.T) {
	f := func(kind string, busy float64, requests int64, want bool, why string) {
		t.Helper()
		s := sample{ProcBusy: busy, Wrk: WrkResult{Requests: requests}}
		judge(&s, kind)
		if s.Comparable != want || !strings.Contains(s.Why, why) {
			t.Fatalf("judge(%s, busy %.2f, %d requests) = %v %q, want %v with %q", kind, busy, requests, s.Comparable, s.Why, want, why)
		}
	}
	f(kindSluice, 0.95, 1000, true, "")
	f(kindNginx, 0.90, 1000, true, "")
	f(kindNginx, 0.89, 1000, false, "89 % of a core")
	f(kindHAProxy, 0.38, 1000, false, "not the bottleneck")
	f(kindSluice, math.NaN(), 1000, false, "– of a core")
	f(kindSluice, 0.99, 0, false, "no request completed")
	f(kindDirect, 0.30, 1000, true, "")
	// A sample judged again is judged afresh.
	s := sample{ProcBusy: 0.5, Wrk: WrkResult{Requests: 1}}
	judge(&s, kindSluice)
	s.ProcBusy = 0.99
	judge(&s, kindSluice)
	if !s.Comparable || s.Why != "" {
		t.Fatalf("re-judged: %+v", s)
	}
}

// TestSummarizeSkipsNotComparable checks that a run judged not comparable
// enters no ratio, on either side, while its numbers stay in the medians,
// and that a row with no comparable round shows n/c, not a number.
func TestSummarizeSkipsNotComparable(t *testing.T) {
	var s []sample
	for r, v := range [][2]float64{{100, 150}, {300, 330}, {310, 100}} {
		s = append(s, mkSample("proxy", kindNginx, 50, r, v[0], 10), mkSample("proxy", kindSluice, 50, r, v[1], 20))
	}
	// Round 0: nginx starved; round 2: Sluice starved.
	s[0].ProcBusy, s[0].Comparable = 0.4, false
	s[5].ProcBusy, s[5].Comparable = 0.5, false
	// HAProxy never comparable.
	for r := 0; r < 3; r++ {
		h := mkSample("proxy", kindHAProxy, 50, r, 50, 10)
		h.ProcBusy, h.Comparable = 0.3, false
		s = append(s, h)
	}
	rows := summarize(s, "proxy", []string{kindNginx, kindHAProxy, kindSluice}, []int{50}, []string{kindNginx, kindHAProxy})
	sl := rows[2]
	if got := sl.RPSRatio[kindNginx]; got.N != 1 || math.Abs(got.Median-1.1) > 1e-9 {
		t.Fatalf("ratio vs nginx %+v: want only round 1 (330/300)", got)
	}
	if sl.RPS.N != 3 || sl.NotComparable != 1 || sl.Busy.N != 3 {
		t.Fatalf("sluice row %+v: every run in the medians, one not comparable", sl)
	}
	if ha := rows[1]; ha.NotComparable != 3 || ratioCell(ha, kindNginx, false) != "n/c" {
		t.Fatalf("haproxy row %+v, cell %q", ha, ratioCell(ha, kindNginx, false))
	}
	if c := ratioCell(sl, kindHAProxy, true); c != "n/c" {
		t.Fatalf("sluice ÷ HAProxy (never comparable) = %q, want n/c", c)
	}
	table := proxyTable(rows)
	for _, want := range []string{"| haproxy | 50 |", "30 % / 99 % (3 of 3 runs not comparable)", "97 % / 99 % (1 of 3 runs not comparable)", "| 1.10 | n/c |"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
}

func TestCeilingNotes(t *testing.T) {
	mk := func(name string, conns int, rps float64) row {
		return row{Contender: name, Conns: conns, RPS: stat{Median: rps, N: 1}}
	}
	notes := ceilingNotes([]row{
		mk(kindDirect, 50, 200), mk(kindNginx, 50, 100), mk(kindSluice, 50, 90), // 2.0×: fine
		mk(kindDirect, 256, 140), mk(kindNginx, 256, 100), mk(kindSluice, 256, 120), // 1.17× Sluice: flagged
		mk(kindNginx, 10, 100), // no direct
	})
	if len(notes) != 2 {
		t.Fatalf("notes %q, want two", notes)
	}
	if !strings.Contains(notes[0], "c=256: UPSTREAM MAY LIMIT") || !strings.Contains(notes[0], "1.17× the fastest proxy (sluice, 120 req/s)") {
		t.Fatalf("note %q", notes[0])
	}
	if !strings.Contains(notes[1], "c=10: `direct` was not run") {
		t.Fatalf("note %q", notes[1])
	}
}

func TestParseLoadAverage(t *testing.T) {
	for in, want := range map[string]string{"0.42 0.30 0.20 1/200 1234\n": "0.42", "": "unknown", "x 1 2": "unknown"} {
		if got := parseLoadAverage(in); got != want {
			t.Errorf("parseLoadAverage(%q) = %q, want %q", in, got, want)
		}
	}
	if got := loadAverage(); got == "unknown" {
		t.Fatal("no load average on this Linux machine")
	}
}
