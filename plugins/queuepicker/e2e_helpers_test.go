//go:build !wasip1

package main

// End-to-end harness: the built plugin in the real wasm host, in front of
// proxytest upstreams through the real proxy. The plugin is built once per
// test binary (plugintest.BuildGo also caches across binaries).

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/wasm"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var built struct {
	mu   sync.Mutex
	path string
}

// pluginPath returns the built plugin of this package.
func pluginPath(t *testing.T) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.path == "" {
		built.path = plugintest.BuildGo(t, pluginPkg)
	}
	return built.path
}

// newHost returns a wasm host logging to logs and exporting plugin
// metrics to set (nil: a private set), closed when the test ends.
// upstreams are the pools its HTTP callouts can reach.
func newHost(t *testing.T, logs io.Writer, upstreams []proxy.UpstreamConfig, set *metrics.Set) *wasm.Host {
	t.Helper()
	host, err := wasm.NewHost(context.Background(), wasm.HostConfig{
		// Shared on disk: compiling a Go guest takes seconds under -race,
		// loading it from the cache milliseconds.
		CacheDir:  filepath.Join(os.TempDir(), "sluice-plugintest", "wazero-cache"),
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Upstreams: upstreams,
		Metrics:   set,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	return host
}

// load loads this package's plugin with config into a new host.
func load(t *testing.T, config string) (*wasm.Plugin, *syncBuffer, error) {
	t.Helper()
	logs := &syncBuffer{}
	p, err := newHost(t, logs, nil, nil).Load(context.Background(), pluginConfig(t, config))
	return p, logs, err
}

// pluginConfig is this package's plugin with config, two instances (so
// shared state is really shared) and a call timeout generous enough for
// -race.
func pluginConfig(t *testing.T, config string) proxy.PluginConfig {
	return proxy.PluginConfig{
		Name:        filepath.Base(pluginPkg),
		Path:        pluginPath(t),
		Config:      proxy.RawConfig(config),
		Instances:   2,
		CallTimeout: proxy.Duration(2 * time.Second),
	}
}

// env is a proxy on 127.0.0.1 running filters in front of cfg's upstreams.
type env struct {
	url     string
	srv     *proxy.Server
	cli     *http.Client
	logs    *syncBuffer
	metrics *metrics.Set // the plugins' metrics
}

// start serves cfg (hostname and timeout are set here) with the plugins,
// all loaded into one host.
func start(t *testing.T, cfg *proxy.Config, plugins ...proxy.PluginConfig) *env {
	t.Helper()
	logs := &syncBuffer{}
	set := metrics.NewSet()
	host := newHost(t, logs, cfg.Upstreams, set)
	var filters []proxy.Filter
	for _, pc := range plugins {
		p, err := host.Load(context.Background(), pc)
		if err != nil {
			t.Fatalf("load %s: %v\nlogs: %s", pc.Name, err, logs)
		}
		filters = append(filters, p)
	}
	cfg = cfg.WithHostname("127.0.0.1").WithTimeout(5 * time.Second)
	srv, err := proxy.NewServer(cfg, proxy.Options{Filters: filters, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Router().SetReady(true)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return &env{url: "http://" + ln.Addr().String(), srv: srv, logs: logs, metrics: set,
		cli: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// metric returns the line of the plugin metrics that starts with series
// (e.g. `sluice_wasm_x_total{plugin="p"} `), or "".
func (e *env) metric(series string) string {
	var b strings.Builder
	e.metrics.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, series) {
			return line
		}
	}
	return ""
}

// checkMetric fails the test unless the plugin metric series (name and
// labels) has the value want.
func (e *env) checkMetric(t *testing.T, series, want string) {
	t.Helper()
	if got := e.metric(series + " "); got != series+" "+want {
		t.Errorf("metric %s: got line %q, want value %s", series, got, want)
	}
}

// do sends a request; headers alternate name, value. A non-empty body is
// sent as JSON.
func (e *env) do(t *testing.T, method, path, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("content-type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.cli.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, string(b)
}
