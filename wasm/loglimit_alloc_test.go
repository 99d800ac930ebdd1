//go:build !race

package wasm

import (
	"io"
	"log/slog"
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestLogHostCallAllocations checks that proxy_log allocates nothing for
// a message below the logger's level (it returns before copying the
// message) nor for one the rate limit drops, so a guest logging in a loop
// costs the host next to nothing.
func TestLogHostCallAllocations(t *testing.T) {
	h := newTestHostWith(t, func(c *HostConfig) {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	pc := fixtureConfig(t, "ok")
	pc.LogLimit = proxy.PluginLogLimit{LinesPerSecond: 0.001, Burst: 1}
	p := h.mustLoad(t, pc)
	in := p.slots[0].inst.Load()
	in.mu.Lock()
	defer in.mu.Unlock()
	stack := make([]uint64, 3)
	logAt := func(level uint32) {
		stack[0], stack[1], stack[2] = uint64(level), 16, 5 // "x-wat"
		hostLog(&in.cc, in.mod, stack)
		if status(stack[0]) != statusOK {
			t.Fatalf("proxy_log: status %d", stack[0])
		}
	}
	if n := testing.AllocsPerRun(500, func() { logAt(logDebug) }); n != 0 {
		t.Errorf("proxy_log below the level: %v allocations, want 0", n)
	}
	logAt(logWarn) // the one line of the burst
	logAt(logWarn) // the first drop arms the summary timer
	if n := testing.AllocsPerRun(500, func() { logAt(logWarn) }); n != 0 {
		t.Errorf("proxy_log over the rate limit: %v allocations, want 0", n)
	}
	if got := h.metric(`sluice_plugin_log_lines_dropped_total{plugin="ok"}`); got != "502" {
		t.Errorf("dropped %s lines, want 502", got)
	}
}
