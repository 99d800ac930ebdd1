package main

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/exposition"
	"github.com/sluice-proxy/sluice/proxy/config"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/wasm"
)

// live is the running process as a reload sees it: what SIGHUP rebuilds
// (the config, read again with the same flags applied; the plugins; the
// server's generation) and what it keeps (the listener, the plugin host
// with its shared data and compilation cache, the logger). Its methods
// run on the goroutine that handles signals, one at a time, except the
// OnRetire callbacks, which only touch plugins (pluginSet is safe for
// concurrent use).
type live struct {
	o     *options
	flags map[string]bool // the flags set on the command line
	demo  *demoUpstream   // nil without -demo

	log   *slog.Logger
	level *slog.LevelVar // log.level, changed by a reload

	// hostCfg makes the plugin host when a config first names a plugin;
	// host is nil until then and is never replaced (shared data lives in
	// it, per vm_id, for the life of the process).
	hostCfg wasm.HostConfig
	host    *wasm.Host
	plugins pluginSet

	srv *proxy.Server
	met reloadMetrics
	// sets are the metric sets every generation writes after its own:
	// the plugin host's and the reload metrics.
	sets []*metrics.Set

	// reloaders run on a reload once the new config is valid and its
	// plugins are loaded, just before the swap, in order; the first error
	// refuses the reload (the running generation stays). A component
	// that re-reads files on reload (the client TLS certificate store)
	// adds its Reload here. They are not run at start-up.
	reloaders []func(cfg *proxy.Config) error
}

func newLive(o *options, flags map[string]bool, demo *demoUpstream, log *slog.Logger, level *slog.LevelVar, cacheDir string) *live {
	l := &live{o: o, flags: flags, demo: demo, log: log, level: level}
	pluginMetrics := metrics.NewSet()
	l.hostCfg = wasm.HostConfig{CacheDir: cacheDir, Logger: log, Metrics: pluginMetrics}
	l.met.init()
	l.sets = []*metrics.Set{pluginMetrics, l.met.set}
	return l
}

// finishConfig applies what the command adds to a loaded config (the
// -demo upstream when the config names none, plugin paths made relative
// to the config file) and validates it, returning it resolved: endpoints
// parsed once, for the proxy and the plugin host alike.
func finishConfig(cfg *proxy.Config, o *options, demo *demoUpstream) (*config.Resolved, error) {
	if demo != nil && len(cfg.Upstreams) == 0 {
		cfg.Upstreams = []proxy.UpstreamConfig{demo.upstream()}
	}
	resolvePluginPaths(cfg, o.configPath)
	resolveTLSPaths(cfg, o.configPath)
	return cfg.Resolve()
}

// ensureHost creates the plugin host if rc names a plugin and there is
// none yet.
func (l *live) ensureHost(ctx context.Context, rc *config.Resolved) error {
	if l.host != nil || len(rc.Config.Plugins) == 0 {
		return nil
	}
	hc := l.hostCfg
	hc.Upstreams = rc.Upstreams
	hc.Redis = rc.Config.Redis // fixed for the process: restart-only (config.restartKeys)
	h, err := wasm.NewHost(ctx, hc)
	if err != nil {
		return err
	}
	l.host = h
	return nil
}

// build loads cfg's plugins (reusing unchanged ones) and returns the
// server options for a generation; the plugins are released when the
// generation is retired. reused counts the plugins reused.
func (l *live) build(ctx context.Context, rc *config.Resolved) (opts proxy.Options, held []*loadedPlugin, reused int, err error) {
	cfg := rc.Config
	if err := l.ensureHost(ctx, rc); err != nil {
		return opts, nil, 0, err
	}
	held, reused, err = l.plugins.acquire(ctx, l.host, cfg.Plugins)
	if err != nil {
		return opts, nil, 0, err
	}
	opts = proxy.Options{
		Filters:  filters(held),
		Logger:   l.log,
		Metrics:  l.sets,
		OnRetire: func() { l.plugins.release(held) },
	}
	return opts, held, reused, nil
}

// start builds the first generation.
func (l *live) start(ctx context.Context, rc *config.Resolved) error {
	cfg := rc.Config
	opts, held, _, err := l.build(ctx, rc)
	if err != nil {
		return err
	}
	srv, err := proxy.NewServer(cfg, opts)
	if err != nil {
		l.plugins.release(held)
		return err
	}
	l.srv = srv
	if certs := srv.Certificates(); certs != nil {
		// Certificates are re-read on every reload, from the paths the
		// new config names (the same files, rotated in place, or new
		// ones); turning tls on or off needs a restart (restartKeys).
		l.reloaders = append(l.reloaders, func(cfg *proxy.Config) error { return certs.Set(cfg.TLS) })
	}
	return nil
}

// reload reads the config again and swaps it in (proxy.Server.Reload),
// or keeps the running one and returns why not. Every outcome is logged
// and counted in sluice_config_reloads_total.
func (l *live) reload(ctx context.Context) error {
	err := l.tryReload(ctx)
	l.met.record(err == nil)
	if err != nil {
		l.log.Error("sluice: reload failed; the running configuration stays", "error", err)
	}
	return err
}

func (l *live) tryReload(ctx context.Context) error {
	cfg, err := buildConfig(l.o, l.flags)
	if err != nil {
		return err
	}
	rc, err := finishConfig(cfg, l.o, l.demo)
	if err != nil {
		return err
	}
	// Settings only a restart can apply refuse the reload before any
	// plugin is compiled for it.
	if err := l.srv.CheckReload(cfg); err != nil {
		return err
	}
	opts, held, reused, err := l.build(ctx, rc)
	if err != nil {
		return err
	}
	for _, r := range l.reloaders {
		if err = r(cfg); err != nil {
			break
		}
	}
	if err == nil {
		err = l.srv.Reload(cfg, opts)
	}
	if err != nil {
		l.plugins.release(held)
		return err
	}
	if l.host != nil {
		// NewHTTPCallouts accepts every endpoint Resolve accepts, so
		// this cannot fail for a config that got this far; if it did,
		// plugins' calls would keep the previous pools.
		if err := l.host.SetUpstreams(rc.Upstreams); err != nil {
			l.log.Error("sluice: reload: plugin HTTP calls keep the previous upstream pools", "error", err)
		}
	}
	l.level.Set(logLevel(cfg.Log.Level))
	l.log.Info("sluice: reloaded", "upstreams", len(cfg.Upstreams), "routes", len(cfg.Routes),
		"plugins", len(cfg.Plugins), "plugins_reused", reused,
		"max_concurrent_requests", cfg.MaxConcurrentRequests)
	return nil
}

// close releases the plugin host (and every plugin still loaded). Call
// it after the server is shut down.
func (l *live) close(ctx context.Context) {
	if l.host != nil {
		_ = l.host.Close(ctx)
	}
}

// reloadMetrics count reloads, as Prometheus counts its own
// (prometheus_config_last_reload_successful and
// prometheus_config_last_reload_success_timestamp_seconds).
type reloadMetrics struct {
	set      *metrics.Set
	ok, fail *metrics.Counter
	lastOK   atomic.Uint64 // float64 bits: Unix seconds of the last success (start-up counts)
	lastGood atomic.Bool   // the last reload succeeded (true before any)
}

func init() {
	exposition.Describe(map[string]string{
		"sluice_config_reloads_total":                         "Reloads (SIGHUP) by result: ok (swapped in) or error (refused; the running configuration stays).",
		"sluice_config_last_reload_successful":                "Whether the last reload succeeded (1) or was refused (0); 1 before any reload.",
		"sluice_config_last_reload_success_timestamp_seconds": "Unix time of the last successful reload, or of the start.",
	})
}

func (m *reloadMetrics) init() {
	m.set = metrics.NewSet()
	m.ok = m.set.NewCounter(`sluice_config_reloads_total{result="ok"}`)
	m.fail = m.set.NewCounter(`sluice_config_reloads_total{result="error"}`)
	m.set.NewGauge("sluice_config_last_reload_success_timestamp_seconds", func() float64 {
		return math.Float64frombits(m.lastOK.Load())
	})
	m.set.NewGauge("sluice_config_last_reload_successful", func() float64 {
		if m.lastGood.Load() {
			return 1
		}
		return 0
	})
	m.stamp()
	m.lastGood.Store(true)
}

func (m *reloadMetrics) stamp() {
	m.lastOK.Store(math.Float64bits(float64(time.Now().UnixNano()) / 1e9))
}

func (m *reloadMetrics) record(ok bool) {
	m.lastGood.Store(ok)
	if ok {
		m.ok.Inc()
		m.stamp()
	} else {
		m.fail.Inc()
	}
}
