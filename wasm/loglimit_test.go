package wasm

import (
	"bytes"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy"
)

func TestLogLimiterDefaultsAndBurst(t *testing.T) {
	set := metrics.NewSet()
	var buf bytes.Buffer
	l := newLogLimiter(proxy.PluginLogLimit{}, slog.New(slog.NewTextHandler(&buf, nil)), set.NewCounter("d"))
	if l.interval != int64(10*time.Millisecond) || l.tolerance != int64(2*time.Second) {
		t.Fatalf("defaults: interval %d tolerance %d, want 100 lines/s, burst 200", l.interval, l.tolerance)
	}
	if newLogLimiter(proxy.PluginLogLimit{LinesPerSecond: -1}, nil, nil).allow() != true {
		t.Fatal("a negative rate did not turn the limit off")
	}

	// One line per 1000 s, bursts of 5: exactly 5 of 50 get through.
	c := set.NewCounter("dropped")
	l = newLogLimiter(proxy.PluginLogLimit{LinesPerSecond: 0.001, Burst: 5}, slog.New(slog.NewTextHandler(&buf, nil)), c)
	allowed := 0
	for range 50 {
		if l.allow() {
			allowed++
		}
	}
	if allowed != 5 || c.Get() != 45 {
		t.Fatalf("allowed %d, dropped %d; want 5 and 45", allowed, c.Get())
	}
	l.close()
	if !strings.Contains(buf.String(), "dropped=45") {
		t.Fatalf("no summary at close: %q", buf.String())
	}
	if l.allow() || c.Get() != 46 {
		t.Fatal("a closed limiter let a line through or stopped counting")
	}
}

// TestLogLimiterHammer has many goroutines share one limiter: every line
// is either allowed or counted as dropped, and no more than the burst is
// allowed at once.
func TestLogLimiterHammer(t *testing.T) {
	c := metrics.NewSet().NewCounter("dropped")
	l := newLogLimiter(proxy.PluginLogLimit{LinesPerSecond: 0.001, Burst: 100}, slog.New(slog.NewTextHandler(io.Discard, nil)), c)
	defer l.close()
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 1000 {
				if l.allow() {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 100 || c.Get() != 8000-100 {
		t.Fatalf("allowed %d, dropped %d; want 100 and %d", allowed, c.Get(), 8000-100)
	}
}

// TestGuestLogFloodIsRateLimited has a guest print in a loop to stdout,
// stderr and proxy_log: only the burst reaches the log, the rest is
// counted in sluice_plugin_log_lines_dropped_total and summarised.
func TestGuestLogFloodIsRateLimited(t *testing.T) {
	s := newRawSetup(t, func(pc *proxy.PluginConfig) {
		pc.LogLimit = proxy.PluginLogLimit{LinesPerSecond: 0.001, Burst: 10}
	})
	before := strings.Count(s.h.logs.String(), `msg="rawcalls `)
	if r := s.e.do(t, "GET", "/", "", "x-raw-print", "100"); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	logged := strings.Count(s.h.logs.String(), `msg="rawcalls `) - before
	dropped := s.h.metric(`sluice_plugin_log_lines_dropped_total{plugin="rawcalls"}`)
	if logged > 10 || logged < 1 || dropped == "" {
		t.Fatalf("%d guest lines logged (want at most the burst of 10), dropped %q", logged, dropped)
	}
	if want := 300 - logged; dropped != strconv.Itoa(want) {
		t.Errorf("dropped %s lines, want %d (300 written, %d logged)", dropped, want, logged)
	}
}

// TestGuestLogFloodDefaultLimit floods with the default limit (100
// lines/s, bursts of 200): at most the burst plus what the rate refills
// while the flood runs reaches the log.
func TestGuestLogFloodDefaultLimit(t *testing.T) {
	s := newRawSetup(t)
	start := time.Now()
	if r := s.e.do(t, "GET", "/", "", "x-raw-print", "400"); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	elapsed := time.Since(start)
	logged := strings.Count(s.h.logs.String(), `msg="rawcalls `)
	dropped, _ := strconv.Atoi(s.h.metric(`sluice_plugin_log_lines_dropped_total{plugin="rawcalls"}`))
	if logged+dropped != 1200 {
		t.Fatalf("%d lines logged and %d dropped, want 1200 in all", logged, dropped)
	}
	if max := 200 + int(elapsed.Seconds()*100) + 1; logged > max {
		t.Errorf("%d lines logged in %v, want at most %d", logged, elapsed, max)
	}
}

// TestLogLimiterSummarisesPeriodically checks that drops are summarised
// by the timer while the plugin runs (every 10 s in production), once per
// period however many lines were dropped, and again for later drops.
func TestLogLimiterSummarisesPeriodically(t *testing.T) {
	logs := &logBuffer{}
	l := newLogLimiter(proxy.PluginLogLimit{LinesPerSecond: 0.001, Burst: 1},
		slog.New(slog.NewTextHandler(logs, nil)), metrics.NewSet().NewCounter("dropped"))
	l.every = 20 * time.Millisecond
	defer l.close()
	for range 30 {
		l.allow()
	}
	waitFor(t, "the first summary", func() bool { return strings.Contains(logs.String(), "dropped=29") })
	l.allow()
	l.allow()
	waitFor(t, "the second summary", func() bool { return strings.Contains(logs.String(), "dropped=2 ") })
	if n := strings.Count(logs.String(), "dropped by the rate limit"); n != 2 {
		t.Errorf("%d summaries, want 2:\n%s", n, logs)
	}
}
