package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/wasm"
)

var readFile = os.ReadFile

// run is main without the exit, for tests.
func run(args []string, stdout, stderr *os.File) int {
	o, fs, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fatalf(stderr, "%v", err)
		return exitConfig
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg, err := buildConfig(o, set)
	if err != nil {
		fatalf(stderr, "%v", err)
		return exitConfig
	}
	var demo *demoUpstream
	if o.demo {
		if demo, err = startDemo(); err != nil {
			fatalf(stderr, "demo upstream: %v", err)
			return exitError
		}
		defer demo.close()
		if len(cfg.Upstreams) == 0 {
			cfg.Upstreams = []proxy.UpstreamConfig{demo.upstream()}
		}
	}
	resolvePluginPaths(cfg, o.configPath)
	if err := cfg.Validate(); err != nil {
		fatalf(stderr, "%v", err)
		return exitConfig
	}
	logger := newLogger(cfg.Log, stderr)
	if o.pprofAddr != "" {
		if err := startPprof(o.pprofAddr, logger); err != nil {
			fatalf(stderr, "pprof: %v", err)
			return exitError
		}
	}

	ctx := context.Background()
	var host *wasm.Host
	if len(cfg.Plugins) > 0 || o.validate {
		pluginMetrics := metrics.NewSet()
		host, err = wasm.NewHost(ctx, wasm.HostConfig{CacheDir: cfg.PluginCacheDir, Logger: logger, Metrics: pluginMetrics, Upstreams: cfg.Upstreams, Redis: cfg.Redis})
		if err != nil {
			fatalf(stderr, "%v", err)
			return exitError
		}
		defer host.Close(ctx)
		if o.validate {
			for _, pc := range cfg.Plugins {
				if err := host.Check(ctx, pc); err != nil {
					fatalf(stderr, "config: plugins: %v", err)
					return exitConfig
				}
			}
			fmt.Fprintf(stdout, "sluice: config is valid (%d upstreams, %d routes, %d plugins)\n",
				len(cfg.Upstreams), len(cfg.Routes), len(cfg.Plugins))
			return exitOK
		}
		return serve(ctx, cfg, logger, host, pluginMetrics, demo)
	}
	return serve(ctx, cfg, logger, nil, nil, demo)
}

// serve builds the server, loads plugins, marks ready and runs until a
// signal, then drains.
func serve(ctx context.Context, cfg *proxy.Config, logger *slog.Logger, host *wasm.Host, pluginMetrics *metrics.Set, demo *demoUpstream) int {
	var filters []proxy.Filter
	var sets []*metrics.Set
	if host != nil {
		sets = append(sets, pluginMetrics)
		for _, pc := range cfg.Plugins {
			p, err := host.Load(ctx, pc)
			if err != nil {
				logger.Error("sluice: cannot start", "error", err)
				return exitError
			}
			defer p.Close()
			filters = append(filters, p)
		}
	}
	srv, err := proxy.NewServer(cfg, proxy.Options{Filters: filters, Logger: logger, Metrics: sets})
	if err != nil {
		logger.Error("sluice: cannot start", "error", err)
		return exitError
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		logger.Error("sluice: cannot listen", "addr", cfg.Addr(), "error", err)
		return exitError
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	srv.Router().SetReady(true)
	logger.Info("sluice: listening", "addr", ln.Addr().String(), "upstreams", len(cfg.Upstreams),
		"plugins", len(filters), "max_concurrent_requests", cfg.MaxConcurrentRequests)
	if demo != nil {
		logger.Info("sluice: demo upstream running", "url", demo.url,
			"try", "curl http://"+displayAddr(ln.Addr())+"/v1/chat/completions -H 'content-type: application/json' -d '{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	select {
	case err := <-serveErr:
		if err != nil {
			logger.Error("sluice: server stopped", "error", err)
			return exitError
		}
		return exitOK
	case s := <-sig:
		logger.Info("sluice: draining", "signal", s.String(), "drain_delay", time.Duration(cfg.DrainDelay),
			"shutdown_timeout", time.Duration(cfg.ShutdownTimeout))
	}
	return drain(ctx, srv, cfg, logger, sig, serveErr)
}

// drain runs the server's drain (proxy.Server.Shutdown: /ready 503 and
// Connection: close at once, drain_delay of serving, then the listener
// closes and in-flight requests get shutdown_timeout) and returns the
// exit code: 0 when every request finished, 1 when shutdown_timeout cut
// some. A second signal ends the drain at once.
func drain(ctx context.Context, srv *proxy.Server, cfg *proxy.Config, logger *slog.Logger, sig <-chan os.Signal, serveErr <-chan error) int {
	sctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.DrainDelay)+time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	go func() {
		select {
		case s := <-sig:
			logger.Warn("sluice: second signal, ending the drain now", "signal", s.String())
			cancel()
		case <-sctx.Done():
		}
	}()
	code := exitOK
	if err := srv.Shutdown(sctx); err != nil {
		var se *proxy.ShutdownError
		if errors.As(err, &se) {
			logger.Error("sluice: drain ended with requests still running; cutting them",
				"requests_cut", se.Running, "connections_cut", se.Connections, "error", se.Err)
			code = exitError
		} else {
			logger.Warn("sluice: shutdown", "error", err)
		}
	}
	<-serveErr
	logger.Info("sluice: stopped", "exit_code", code)
	return code
}

// resolvePluginPaths makes relative plugin paths relative to the config
// file's directory, as operators expect of paths written in a file.
func resolvePluginPaths(cfg *proxy.Config, configPath string) {
	if configPath == "" {
		return
	}
	dir := filepath.Dir(configPath)
	for i := range cfg.Plugins {
		if p := cfg.Plugins[i].Path; p != "" && !filepath.IsAbs(p) {
			cfg.Plugins[i].Path = filepath.Join(dir, p)
		}
	}
}

func newLogger(lc proxy.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	switch lc.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func displayAddr(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return a.String()
}
