package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// InMemoryCache as HostConfig.CacheDir keeps compiled plugins in memory
// only: nothing is written to disk and every process start recompiles.
const InMemoryCache = "-"

// DefaultStartTimeout bounds each start-up call into a new instance
// (_initialize, proxy_on_context_create of the root context,
// proxy_on_vm_start, proxy_on_configure) when HostConfig.StartTimeout is 0.
// Start-up runs off the request path (at load, or when a discarded
// instance is replaced), and a Go guest's _initialize takes milliseconds.
const DefaultStartTimeout = 5 * time.Second

// HostConfig configures a Host. The zero value is usable.
type HostConfig struct {
	// CacheDir holds compiled plugins across restarts. "" (the default)
	// is "sluice/wasm" under os.UserCacheDir (in-memory when there is no
	// user cache directory); InMemoryCache ("-") keeps them in memory only.
	CacheDir string
	// Logger receives plugin logs (proxy_log, stdout/stderr) and host
	// errors, with a "plugin" attribute. Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives the plugins' metrics. Default: a private set.
	Metrics *metrics.Set
	// StartTimeout bounds each start-up call into a new instance.
	// Default DefaultStartTimeout.
	StartTimeout time.Duration
	// Upstreams are the pools proxy_http_call can reach by name when
	// Callouts is nil: the Host then sends callouts itself with an
	// HTTPCallouts over their endpoints (round-robin, 1 MiB response
	// cap). Pass the Upstreams of the proxy configuration's
	// config.Config.Resolve, the values the proxy's own pools are built
	// from: the Host parses no endpoint URL itself. Read, not copied or
	// modified. Default none: every proxy_http_call fails with
	// BAD_ARGUMENT (unknown pool).
	Upstreams []config.Upstream
	// Callouts, when set, sends proxy_http_call requests instead of the
	// HTTPCallouts built from Upstreams. The Host does not close it.
	Callouts Callouts
	// Redis are the Redis servers plugins reach with proxy_redis_init and
	// proxy_redis_call (the configuration's redis: list). The Host builds
	// a connection pool per entry (RedisClients) and closes them in
	// Close. Default none: those calls answer BAD_ARGUMENT.
	Redis []proxy.RedisConfig
	// HiddenForeignFunctions are names of Sluice's foreign functions
	// (sluice.*) that proxy_call_foreign_function answers NOT_FOUND, as a
	// host without them does (Envoy): for tests of a plugin's fallbacks
	// (internal/pluginenv.StartHiding). Default none.
	HiddenForeignFunctions []string
}

// Host runs Proxy-Wasm plugins: one wazero runtime and one compilation
// cache for the process, shared by every plugin. A Host is safe for
// concurrent use; Close it when done (it closes the plugins still loaded).
type Host struct {
	rt           wazero.Runtime
	cache        wazero.CompilationCache
	log          *slog.Logger
	metrics      *metrics.Set
	startTimeout time.Duration

	callouts    atomic.Pointer[calloutSet] // nil: no callouts; SetUpstreams swaps it
	redis       *RedisClients              // built from HostConfig.Redis; closed by Close
	queues      queueRegistry
	userMetrics metricRegistry

	mu      sync.Mutex
	closed  bool
	plugins map[*Plugin]struct{}
	shared  map[string]*sharedData // by vm_id

	hidden map[string]bool // HiddenForeignFunctions; nil: none (read-only)
}

// NewHost creates the runtime with the host modules every guest may
// import: "env" (Proxy-Wasm v0.2.1), "wasi_snapshot_preview1" and
// "wasi_unstable" (the same WASI functions, for AssemblyScript guests).
// Guests get no filesystem, environment, arguments or network; their
// stdout and stderr go to the logger.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	h := &Host{
		log:          cfg.Logger,
		metrics:      cfg.Metrics,
		startTimeout: cfg.StartTimeout,
		plugins:      make(map[*Plugin]struct{}),
		shared:       make(map[string]*sharedData),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.metrics == nil {
		h.metrics = metrics.NewSet()
	}
	if h.startTimeout <= 0 {
		h.startTimeout = DefaultStartTimeout
	}
	for _, name := range cfg.HiddenForeignFunctions {
		if h.hidden == nil {
			h.hidden = make(map[string]bool)
		}
		h.hidden[name] = true
	}
	if cfg.Callouts != nil {
		h.callouts.Store(&calloutSet{c: cfg.Callouts})
	} else if err := h.SetUpstreams(cfg.Upstreams); err != nil {
		return nil, err
	}
	h.queues.init()
	h.userMetrics.init(h.metrics)
	if len(cfg.Redis) > 0 {
		routeRedisLogs(h.log)
		rc, err := NewRedisClients(cfg.Redis)
		if err != nil {
			h.closeClients()
			return nil, err
		}
		h.redis = rc
	}
	cache, err := newCache(cfg.CacheDir, h.log)
	if err != nil {
		h.closeClients()
		return nil, err
	}
	h.cache = cache
	// Memory is limited per instance by a custom allocator (see
	// limitedMemory), so the runtime keeps wazero's maximum. Runaway
	// guests are stopped by the stop checks added to every plugin
	// (addStopChecks), not by WithCloseOnContextDone, which costs a
	// goroutine per call and an exit to Go at every loop iteration.
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(cache)
	h.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if err := h.instantiateHostModules(ctx); err != nil {
		_ = h.rt.Close(ctx)
		_ = cache.Close(ctx)
		h.closeClients()
		return nil, fmt.Errorf("wasm: host modules: %w", err)
	}
	return h, nil
}

func newCache(dir string, log *slog.Logger) (wazero.CompilationCache, error) {
	if dir == InMemoryCache {
		return wazero.NewCompilationCache(), nil
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			log.Warn("wasm: no user cache directory, compiling plugins in memory only", "error", err)
			return wazero.NewCompilationCache(), nil
		}
		dir = filepath.Join(base, "sluice", "wasm")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wasm: cache dir: %w", err)
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm: cache dir %q: %w", dir, err)
	}
	return c, nil
}

func (h *Host) instantiateHostModules(ctx context.Context) error {
	if err := instantiateEnv(ctx, h.rt); err != nil {
		return err
	}
	// sluice.yield: imported by every plugin through addStopChecks.
	_, err := h.rt.NewHostModuleBuilder(yieldModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostYield), nil, nil).
		Export(yieldName).
		Instantiate(ctx)
	if err != nil {
		return err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		return err
	}
	// AssemblyScript's runtime imports proc_exit (and, when used, other
	// WASI functions) from "wasi_unstable"; the functions guests use have
	// the same signatures and meaning as in preview1.
	compiled, err := wasi_snapshot_preview1.NewBuilder(h.rt).Compile(ctx)
	if err != nil {
		return err
	}
	_, err = h.rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName("wasi_unstable"))
	return err
}

// Close closes every plugin still loaded, then the runtime and the cache.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	plugins := make([]*Plugin, 0, len(h.plugins))
	for p := range h.plugins {
		plugins = append(plugins, p)
	}
	h.mu.Unlock()
	var errs []error
	for _, p := range plugins {
		errs = append(errs, p.Close())
	}
	errs = append(errs, h.rt.Close(ctx), h.cache.Close(ctx), h.closeClients())
	return errors.Join(errs...)
}

// closeClients closes the callout and Redis clients the Host built.
func (h *Host) closeClients() error {
	if cs := h.callouts.Load(); cs != nil && cs.own != nil {
		cs.own.Close()
	}
	return h.redis.Close()
}

func (h *Host) forget(p *Plugin) {
	h.mu.Lock()
	delete(h.plugins, p)
	h.mu.Unlock()
}

// Check reads and compiles the plugin and checks its exports and imports,
// without running it (for `sluice -validate`). Errors name the plugin:
// `wasm: plugin "auth": ...`.
func (h *Host) Check(ctx context.Context, pc proxy.PluginConfig) error {
	compiled, _, err := h.compile(ctx, pc)
	if err != nil {
		return err
	}
	if err := compiled.Close(ctx); err != nil {
		return pluginError(pc.Name, err)
	}
	return nil
}

// Load compiles and checks the plugin, then creates its instances
// (PluginConfig.Instances, default GOMAXPROCS). On each it calls
// _initialize, creates the root context, then proxy_on_vm_start with the
// VM config and proxy_on_configure with the plugin config; a false result
// fails the load.
func (h *Host) Load(ctx context.Context, pc proxy.PluginConfig) (*Plugin, error) {
	compiled, info, err := h.compile(ctx, pc)
	if err != nil {
		return nil, err
	}
	vmID := pc.VMID
	if vmID == "" {
		vmID = pc.Name
	}
	env, err := guestEnv(pc.EnvironmentVariables)
	if err == nil {
		err = pc.LogLimit.Validate()
	}
	if err == nil {
		err = pc.SharedData.Validate()
	}
	if err != nil {
		_ = compiled.Close(ctx)
		return nil, pluginError(pc.Name, err)
	}
	p := &Plugin{
		host:        h,
		name:        pc.Name,
		log:         h.log.With("plugin", pc.Name),
		config:      append([]byte(nil), pc.Config...),
		vmConfig:    append([]byte(nil), pc.VMConfig...),
		nameBytes:   []byte(pc.Name),
		rootIDBytes: nil, // no root_id setting: "" as in Envoy without one
		vmIDBytes:   []byte(vmID),
		failOpen:    pc.FailurePolicy == proxy.FailOpen,
		callTimeout: time.Duration(pc.CallTimeout),
		memLimit:    memoryLimit(pc),
		compiled:    compiled,
		info:        info,
		metrics:     newPluginMetrics(h.metrics, pc.Name),
		env:         env,
		sharedRules: newSharedRules(pc.SharedData),
	}
	p.logLimit = newLogLimiter(pc.LogLimit, p.log, p.metrics.logDropped)
	p.redis.init(h.metrics, pc.Name)
	if p.callTimeout == 0 {
		p.callTimeout = proxy.DefaultPluginCallTimeout
	}
	n := pc.Instances
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = compiled.Close(ctx)
		return nil, pluginError(pc.Name, errors.New("host is closed"))
	}
	p.shared = h.shared[vmID]
	if p.shared == nil {
		p.shared = newSharedData()
		p.shared.registerMetrics(h.metrics, vmID)
		h.shared[vmID] = p.shared
	}
	h.mu.Unlock()
	if err := p.load(ctx, n); err != nil {
		_ = compiled.Close(ctx)
		return nil, pluginError(pc.Name, err)
	}
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.plugins[p] = struct{}{}
	}
	h.mu.Unlock()
	if closed {
		_ = p.Close()
		return nil, pluginError(pc.Name, errors.New("host is closed"))
	}
	return p, nil
}

// memoryLimit is the plugin's per-instance memory cap in bytes, rounded
// down to whole 64 KiB pages.
func memoryLimit(pc proxy.PluginConfig) uint64 {
	l := uint64(pc.MemoryLimit)
	if l == 0 {
		l = proxy.DefaultPluginMemoryLimit
	}
	l = min(l, maxMemoryBytes)
	return l &^ (pageSize - 1)
}

const (
	pageSize       = 1 << 16
	maxMemoryBytes = 1 << 32
)

// calloutSet is what proxy_http_call sends through: the Callouts in use
// and, when the Host built them from upstreams, the HTTPCallouts to close.
type calloutSet struct {
	c   Callouts
	own *HTTPCallouts
}

// currentCallouts returns the Callouts new HTTP calls use, or nil.
func (h *Host) currentCallouts() Callouts {
	if cs := h.callouts.Load(); cs != nil {
		return cs.c
	}
	return nil
}

// SetUpstreams replaces the pools proxy_http_call reaches (a reload's new
// HostConfig.Upstreams). Calls already sent finish on the pools they
// started on; the old pools' idle connections are closed. It does nothing
// when the Host was given its own HostConfig.Callouts. Safe for
// concurrent use with calls; on error the running pools stay.
func (h *Host) SetUpstreams(upstreams []config.Upstream) error {
	if cs := h.callouts.Load(); cs != nil && cs.own == nil {
		return nil
	}
	var next *calloutSet
	if len(upstreams) > 0 {
		c, err := NewHTTPCallouts(upstreams, HTTPCalloutsConfig{})
		if err != nil {
			return err
		}
		next = &calloutSet{c: c, own: c}
	}
	if old := h.callouts.Swap(next); old != nil && old.own != nil {
		old.own.Close() // idle connections only: calls in flight finish
	}
	return nil
}
