package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

func TestPercentiles(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i)
	}
	p := percentiles(v)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Fatalf("%+v", p)
	}
	if p := percentiles(nil); p != (pcts{}) {
		t.Fatalf("empty: %+v", p)
	}
}

func TestStreamClient(t *testing.T) {
	const n, tokens, delay = 20, 5, 2 * time.Millisecond
	s := proxytest.NewServer(proxytest.Options{Tokens: tokens, TokenDelay: delay})
	defer s.Close()
	res, err := streamClient(s.Addr, n, tokens, delay, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Streams != n || res.Completed != n || res.Failed != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Events < n*tokens {
		t.Fatalf("%d events, want at least %d", res.Events, n*tokens)
	}
	// Token k arrives (k+1)×delay after the request at the earliest, so
	// lateness is never much below zero; the stream takes at least
	// tokens×delay.
	if res.Lateness.P50 < -1 || res.Lateness.Max > 5000 || res.TTFB.P50 <= 0 || res.WallMs < float64(tokens*delay/time.Millisecond) {
		t.Fatalf("implausible timings %+v", res)
	}
	if res.FirstLateness.P50 < -1 || res.Settled.Max > res.Lateness.Max+1 {
		t.Fatalf("implausible first/settled %+v", res)
	}
	if got := s.Requests(); got != n {
		t.Fatalf("upstream saw %d requests, want %d", got, n)
	}
}

func TestStreamClientReportsFailures(t *testing.T) {
	s := proxytest.NewServer(proxytest.Options{Tokens: 3, Fail: proxytest.Fail500})
	defer s.Close()
	res, err := streamClient(s.Addr, 3, 3, 0, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 3 || res.Completed != 0 || !strings.Contains(res.FirstErr, "500") {
		t.Fatalf("result %+v", res)
	}
	if _, err := streamClient("127.0.0.1:1", 1, 1, 0, time.Second); err == nil || !strings.Contains(err.Error(), "dial") {
		t.Fatalf("dial to a closed port: %v", err)
	}
}

func TestStreamTable(t *testing.T) {
	mk := func(path string, round int, p50, p99, cpu float64) streamResult {
		return streamResult{Path: path, Round: round, Tokens: 40, DelayMs: 50,
			Client: streamClientResult{Streams: 1000, Completed: 1000, Events: 41000,
				TTFB:     pcts{P50: p50 * 10, P99: p99 * 10},
				Lateness: pcts{P50: p50, P99: p99}, Settled: pcts{P50: p50 / 10, P99: p99 / 10}},
			RSSIdleKiB: 10 * 1024, RSSPeakKiB: 30 * 1024, CPUPerEvent: cpu}
	}
	table := streamTable([]streamResult{
		mk(kindDirect, 0, 1, 3, 0), mk(kindSluice, 0, 1.5, 5, 12.5), mk(kindNginx, 0, 1.1, 3.3, 10),
		mk(kindDirect, 1, 1, 3, 0), mk(kindSluice, 1, 1.2, 4, 12.5), mk(kindNginx, 1, 1.1, 3.3, 5),
	})
	for _, want := range []string{"| direct | 1000 | 40 × 50 ms |", "0.350 / 1.500", "0.035 / 0.150", "10.0 → 30.0", "| 20.5 |",
		"| 1.35 / 1.50 |", // TTFB ÷ direct: medians of 1.5, 1.2 and of 5/3, 4/3
		"| 12.5 | 1.88 |", // CPU/event ÷ nginx: median of 1.25 and 2.5
		"| nginx | 1000 |", "| 1.10 / 1.10 |", "| 7.5 | 1.00 |"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
}
