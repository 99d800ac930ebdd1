package main

import (
	"strings"
	"testing"
)

func TestGoalsTable(t *testing.T) {
	var s []sample
	for r := 0; r < 3; r++ {
		s = append(s, mkSample("proxy", kindNginx, 50, r, 100, 10), mkSample("proxy", kindSluice, 50, r, 90, 12),
			mkSample("plugins", kindSluice, 50, r, 100, 10), mkSample("plugins", "sluice-golist", 50, r, 85, 14))
	}
	nc := mkSample("proxy", kindNginx, 256, 0, 100, 10)
	nc.Comparable = false
	s = append(s, nc, mkSample("proxy", kindSluice, 256, 0, 120, 9))
	mk := func(path string, round int, ttfb, cpu float64, peak int64) streamResult {
		return streamResult{Path: path, Round: round, Client: streamClientResult{Streams: 1000, TTFB: pcts{P50: ttfb}},
			CPUPerEvent: cpu, RSSIdleKiB: 1000, RSSPeakKiB: peak}
	}
	rep := &report{
		ProxyRows:  summarize(s, "proxy", []string{kindNginx, kindSluice}, []int{50, 256}, []string{kindNginx}),
		PluginRows: summarize(s, "plugins", []string{kindSluice, "sluice-golist"}, []int{50}, []string{kindSluice}),
		Streams: []streamResult{
			mk(kindDirect, 0, 10, 0, 0), mk(kindSluice, 0, 30, 9, 41000), mk(kindNginx, 0, 11, 6, 18000),
			mk(kindDirect, 1, 10, 0, 0), mk(kindSluice, 1, 15, 6, 17000), mk(kindNginx, 1, 11, 6, 18000),
		},
	}
	table := goalsTable(goals(rep))
	for _, want := range []string{
		"| Sluice req/s ÷ nginx, c=50 | ≥ 1.0 | 0.90 | no |",
		"| Sluice CPU/request ÷ nginx, c=50 | ≤ 1.0 | 1.20 | no |",
		"| Sluice req/s ÷ nginx, c=256 | ≥ 1.0 | n/c | n/c |", // nginx not comparable there
		"| third-party-style Go plugin req/s ÷ Sluice alone, c=50 (issue 10) | ≥ 0.8 | 0.85 | yes |",
		"| SSE CPU/event ÷ nginx, 1000 streams | ≤ 1.0 | 1.25 | no |",       // median of 1.5 and 1.0
		"| SSE burst TTFB p50 ÷ direct, 1000 streams | ≤ 2.0 | 2.25 | no |", // median of 3.0 and 1.5
		"| SSE memory per open stream, 1000 streams (KiB) | ≤ 16 | 28.00 | no |",
	} {
		if !strings.Contains(table, want) {
			t.Fatalf("goals table lacks %q:\n%s", want, table)
		}
	}
	if md := rep.markdown(); !strings.Contains(md, "## Goals (issues 12 and 10)") {
		t.Fatal("report has no goals section")
	}
}
