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

	"github.com/sluice-proxy/sluice/internal/version"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
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
	if o.version {
		fmt.Fprintln(stdout, version.Get())
		return exitOK
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
	rc, err := finishConfig(cfg, o, demo)
	if err != nil {
		fatalf(stderr, "%v", err)
		return exitConfig
	}
	if err := checkPprof(o.pprofAddr, cfg.Admin); err != nil {
		fatalf(stderr, "%v", err)
		return exitConfig
	}
	level := new(slog.LevelVar)
	logger := newLeveledLogger(cfg.Log, stderr, level)
	if o.pprofAddr != "" && o.pprofAddr != pprofOnAdmin {
		if err := startPprof(o.pprofAddr, logger); err != nil {
			fatalf(stderr, "pprof: %v", err)
			return exitError
		}
	}

	ctx := context.Background()
	l := newLive(o, set, demo, logger, level, cfg.PluginCacheDir)
	defer l.close(ctx)
	if o.validate {
		return validate(ctx, l, cfg, stdout, stderr)
	}
	return serve(ctx, rc, l)
}

// validate compiles and checks every plugin of cfg (-validate).
func validate(ctx context.Context, l *live, cfg *proxy.Config, stdout, stderr *os.File) int {
	host, err := wasm.NewHost(ctx, l.hostCfg)
	if err != nil {
		fatalf(stderr, "%v", err)
		return exitError
	}
	defer host.Close(ctx)
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

// serve builds the server, loads plugins, marks ready and runs until
// SIGTERM or SIGINT, then drains. SIGHUP reloads (live.reload).
func serve(ctx context.Context, rc *config.Resolved, l *live) int {
	cfg := rc.Config
	logger := l.log
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	// SIGHUP reloads. A buffer of one coalesces SIGHUPs sent while a
	// reload runs into one more reload, which reads the file as it is
	// then; one sent while starting is served once started.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := l.start(ctx, rc); err != nil {
		logger.Error("sluice: cannot start", "error", err)
		return exitError
	}
	srv := l.srv
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		logger.Error("sluice: cannot listen", "addr", cfg.Addr(), "error", err)
		return exitError
	}
	if cfg.Admin.Enabled() {
		admin, err := startAdmin(cfg.Admin.Addr(), srv, l.o.pprofAddr == pprofOnAdmin, logger)
		if err != nil {
			ln.Close()
			logger.Error("sluice: cannot listen", "admin", cfg.Admin.Addr(), "error", err)
			return exitError
		}
		defer admin.Close() // after the drain: probes and scrapes answer until the end
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	srv.Router().SetReady(true)
	logger.Info("sluice: listening", "addr", ln.Addr().String(), "upstreams", len(cfg.Upstreams),
		"plugins", len(cfg.Plugins), "max_concurrent_requests", cfg.MaxConcurrentRequests, "tls", cfg.TLS != nil)
	if demo := l.demo; demo != nil {
		logger.Info("sluice: demo upstream running", "url", demo.url,
			"try", "curl http://"+displayAddr(ln.Addr())+"/v1/chat/completions -H 'content-type: application/json' -d '{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")
	}

	for {
		select {
		case err := <-serveErr:
			if err != nil {
				logger.Error("sluice: server stopped", "error", err)
				return exitError
			}
			return exitOK
		case <-hup:
			_ = l.reload(ctx) // logged and counted; a failure keeps the running config
		case s := <-sig:
			cfg = srv.Config() // the last config reloaded
			logger.Info("sluice: draining", "signal", s.String(), "drain_delay", time.Duration(cfg.DrainDelay),
				"shutdown_timeout", time.Duration(cfg.ShutdownTimeout))
			// hup stays registered until serve returns: a SIGHUP while
			// draining is ignored rather than killing the process.
			return drain(ctx, srv, cfg, logger, sig, serveErr)
		}
	}
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
	return newLeveledLogger(lc, w, new(slog.LevelVar))
}

// newLeveledLogger is newLogger with its level in lv, which a reload sets.
func newLeveledLogger(lc proxy.LogConfig, w io.Writer, lv *slog.LevelVar) *slog.Logger {
	lv.Set(logLevel(lc.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logLevel is log.level as a slog level (info when unset).
func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func displayAddr(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return a.String()
}
