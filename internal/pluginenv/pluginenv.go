// Package pluginenv runs a guest plugin end to end for tests: built from
// source (internal/plugintest.BuildGo), loaded into the real wasm host, in
// front of upstreams through the real proxy. Only tests import it.
package pluginenv

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
	"github.com/sluice-proxy/sluice/wasm"
)

var built struct {
	mu    sync.Mutex
	paths map[string]string
}

// PluginPath returns the built plugin pkg (such as "plugins/apikey"),
// building it once per test binary.
func PluginPath(t testing.TB, pkg string) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.paths[pkg] == "" {
		if built.paths == nil {
			built.paths = make(map[string]string)
		}
		built.paths[pkg] = plugintest.BuildGo(t, pkg)
	}
	return built.paths[pkg]
}

// NewHost returns a wasm host logging to logs and exporting plugin
// metrics to set (nil: a private set), closed when the test ends.
// upstreams are the pools its HTTP callouts can reach, as
// config.Config.Resolve returns them.
func NewHost(t *testing.T, logs io.Writer, upstreams []config.Upstream, set *metrics.Set) *wasm.Host {
	t.Helper()
	return newHost(t, logs, upstreams, set, hostExtras{})
}

// hostExtras are the HostConfig fields some tests set.
type hostExtras struct {
	redis  []proxy.RedisConfig
	hidden []string // HiddenForeignFunctions
}

func newHost(t testing.TB, logs io.Writer, upstreams []config.Upstream, set *metrics.Set, x hostExtras) *wasm.Host {
	t.Helper()
	host, err := wasm.NewHost(context.Background(), wasm.HostConfig{
		CacheDir:               plugintest.CompileCacheDir(),
		Logger:                 slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Upstreams:              upstreams,
		Metrics:                set,
		Redis:                  x.redis,
		HiddenForeignFunctions: x.hidden,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	return host
}

// Load loads plugin pkg with config into a new host.
func Load(t *testing.T, pkg, config string) (*wasm.Plugin, *plugintest.LogBuffer, error) {
	t.Helper()
	logs := &plugintest.LogBuffer{}
	p, err := NewHost(t, logs, nil, nil).Load(context.Background(), PluginConfig(t, pkg, config))
	return p, logs, err
}

// LoadFails loads plugin pkg with the invalid config and fails t when the
// load succeeds or when the host logs contain none of wants (give both
// spellings where the plugin's message may arrive JSON-quoted).
func LoadFails(t *testing.T, pkg, config string, wants ...string) {
	t.Helper()
	_, logs, err := Load(t, pkg, config)
	if err == nil {
		t.Fatal("loading with an invalid configuration succeeded")
	}
	for _, w := range wants {
		if strings.Contains(logs.String(), w) {
			return
		}
	}
	t.Errorf("load error %v; logs do not name the bad configuration (want one of %q):\n%s", err, wants, logs)
}

// PluginConfig is plugin pkg with config, two instances (so shared state
// is really shared) and a call timeout generous enough for -race.
func PluginConfig(t testing.TB, pkg, config string) proxy.PluginConfig {
	return proxy.PluginConfig{
		Name:        filepath.Base(pkg),
		Path:        PluginPath(t, pkg),
		Config:      proxy.RawConfig(config),
		Instances:   2,
		CallTimeout: proxy.Duration(2 * time.Second),
	}
}

// Pools starts one proxytest upstream per name (its Options.Name), closed
// when the test ends, and returns a config with one pool of that name in
// front of each, in the order given, and the upstreams by name.
func Pools(t *testing.T, names ...string) (*proxy.Config, map[string]*proxytest.Server) {
	t.Helper()
	cfg := proxy.NewConfig()
	ups := make(map[string]*proxytest.Server, len(names))
	for _, name := range names {
		up := proxytest.NewServer(proxytest.Options{Name: name})
		t.Cleanup(up.Close)
		ups[name] = up
		cfg = cfg.WithUpstream(name, up.URL)
	}
	return cfg, ups
}

// Env is a proxy on 127.0.0.1 running plugins in front of upstreams.
type Env struct {
	URL     string
	Server  *proxy.Server
	Client  *http.Client
	Logs    *plugintest.LogBuffer
	Metrics *metrics.Set // the plugins' metrics
}

// Start serves cfg (hostname and timeout are set here) with the plugins,
// all loaded into one host.
func Start(t *testing.T, cfg *proxy.Config, plugins ...proxy.PluginConfig) *Env {
	t.Helper()
	return StartRedis(t, nil, cfg, plugins...)
}

// StartRedis is Start with a host whose redis: list is redis (for the
// Higress Redis extensions); each call is one Sluice replica with its
// own host and shared data.
func StartRedis(t testing.TB, redis []proxy.RedisConfig, cfg *proxy.Config, plugins ...proxy.PluginConfig) *Env {
	t.Helper()
	return start(t, hostExtras{redis: redis}, cfg, plugins...)
}

// StartHiding is Start with a host that answers NOT_FOUND for the
// foreign functions named in hidden (wasm.HostConfig.HiddenForeignFunctions),
// as a host without them does: for a plugin's fallbacks.
func StartHiding(t testing.TB, hidden []string, cfg *proxy.Config, plugins ...proxy.PluginConfig) *Env {
	t.Helper()
	return start(t, hostExtras{hidden: hidden}, cfg, plugins...)
}

func start(t testing.TB, x hostExtras, cfg *proxy.Config, plugins ...proxy.PluginConfig) *Env {
	t.Helper()
	logs := &plugintest.LogBuffer{}
	set := metrics.NewSet()
	cfg = cfg.WithHostname("127.0.0.1").WithTimeout(5 * time.Second)
	resolved, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	host := newHost(t, logs, resolved.Upstreams, set, x)
	var filters []proxy.Filter
	for _, pc := range plugins {
		p, err := host.Load(context.Background(), pc)
		if err != nil {
			t.Fatalf("load %s: %v\nlogs: %s", pc.Name, err, logs)
		}
		filters = append(filters, p)
	}
	srv, url := plugintest.Serve(t, cfg, proxy.Options{Filters: filters, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return &Env{URL: url, Server: srv, Logs: logs, Metrics: set,
		Client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// Metric returns the line of the plugin metrics that starts with series
// (e.g. `sluice_wasm_x_total{plugin="p"} `), or "".
func (e *Env) Metric(series string) string {
	var b strings.Builder
	e.Metrics.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, series) {
			return line
		}
	}
	return ""
}

// CheckMetric fails the test unless the plugin metric series (name and
// labels) has the value want.
func (e *Env) CheckMetric(t *testing.T, series, want string) {
	t.Helper()
	if got := e.Metric(series + " "); got != series+" "+want {
		t.Errorf("metric %s: got line %q, want value %s", series, got, want)
	}
}

// Do sends a request; headers alternate name, value. A non-empty body is
// sent as JSON.
func (e *Env) Do(t *testing.T, method, path, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	if body != "" {
		headers = append([]string{"content-type", "application/json"}, headers...)
	}
	return plugintest.RoundTrip(t, e.Client, testsync.NewRequest(t, method, e.URL+path, body, headers...))
}
