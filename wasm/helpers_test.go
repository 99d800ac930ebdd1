package wasm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
)

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer = plugintest.LogBuffer

type testHost struct {
	*Host
	logs *logBuffer
	set  *metrics.Set
}

// testCacheDir is a compilation cache shared by the tests (and by test
// runs): compiling a Go guest under the race detector takes many seconds.
var testCacheDir = plugintest.CompileCacheDir()

// newTestHost returns a Host with the shared test cache, a captured debug log
// and a private metrics set, closed at the end of the test.
func newTestHost(t testing.TB) *testHost {
	t.Helper()
	return newTestHostWith(t, nil)
}

// newTestHostWith is newTestHost with mod applied to the HostConfig.
func newTestHostWith(t testing.TB, mod func(*HostConfig)) *testHost {
	t.Helper()
	logs := &logBuffer{}
	set := metrics.NewSet()
	cfg := HostConfig{
		CacheDir:     testCacheDir,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4})),
		Metrics:      set,
		StartTimeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHost(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("Host.Close: %v", err)
		}
	})
	return &testHost{Host: h, logs: logs, set: set}
}

// fixtureConfig is a plugin config for a hostile fixture: one instance, a
// generous call timeout (the race detector is slow), 1 MiB of memory.
func fixtureConfig(t testing.TB, name string) proxy.PluginConfig {
	return proxy.PluginConfig{
		Name:        name,
		Path:        plugintest.Fixture(t, name),
		Instances:   1,
		CallTimeout: proxy.Duration(time.Second),
		MemoryLimit: 1 << 20,
	}
}

func (h *testHost) mustLoad(t testing.TB, pc proxy.PluginConfig) *Plugin {
	t.Helper()
	p, err := h.Load(context.Background(), pc)
	if err != nil {
		t.Fatalf("Load(%s): %v", pc.Name, err)
	}
	return p
}

// metric returns the current value of one metric line in h's set, or "".
func (h *testHost) metric(name string) string {
	var b bytes.Buffer
	h.set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// newExchange returns an Exchange (no server behind it) carrying a GET
// request for path.
func newExchange(path string, headers ...string) *proxy.Exchange {
	ex := new(proxy.Exchange)
	h := ex.RequestHeaders()
	h.AddString(":method", "GET")
	h.AddString(":path", path)
	h.AddString(":authority", "example.test")
	h.AddString(":scheme", "http")
	for i := 0; i+1 < len(headers); i += 2 {
		h.AddString(headers[i], headers[i+1])
	}
	return ex
}

// startRequest opens a stream on p for ex and runs its request headers
// (end of stream), failing t on an error or when the plugin's action is
// not want. The caller ends the stream (OnDone).
func startRequest(t testing.TB, p *Plugin, ex *proxy.Exchange, want proxy.Action) proxy.Stream {
	t.Helper()
	st, err := p.NewStream(ex)
	if err != nil {
		t.Fatal(err)
	}
	if act, err := st.OnRequestHeaders(true); err != nil || act != want {
		t.Fatalf("OnRequestHeaders = %v, %v; want %v", act, err, want)
	}
	return st
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testsync.WaitFor(t, 5*time.Second, what, cond)
}
