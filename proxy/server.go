package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/exposition"
	"github.com/sluice-proxy/sluice/proxy/internal/jsonspan"
	"github.com/sluice-proxy/sluice/proxy/internal/modellist"
	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// Options carries what a Server needs besides its Config.
type Options struct {
	// Filters run on every proxied request, in order. The Server does not
	// close them.
	Filters []Filter
	// Logger receives server and access logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics are extra metric sets written on /metrics after the
	// server's own (for example the plugin host's).
	Metrics []*metrics.Set
	// OnRetire, when set, is called once, on its own goroutine, when the
	// generation these options built is retired: Reload replaced it and
	// its last request ended, or the server was closed. The caller
	// releases what it handed over (Filters) there.
	OnRetire func()
}

// Server is the Sluice proxy: probes, metrics, and the proxied request path
// on fasthttp. Build it with NewServer, run it with Serve or
// ListenAndServe, stop it with Shutdown. A Server is safe for concurrent
// use.
type Server struct {
	cfg       *Config
	router    *Router
	pools     *upstream.Pools
	routes    []route
	filters   []Filter
	log       *slog.Logger
	accessLog bool
	timeout   time.Duration
	bodyLimit int
	// bodyTimeout is client_body_timeout; bodies counts the bytes of
	// bodies being read against max_request_body_buffer.
	bodyTimeout time.Duration
	bodies      bodyBudget
	errBodies   *errorBodies
	ids         requestIDs

	// set holds this generation's gauges (their closures read its
	// state); cum the counters and histograms, found or created by name,
	// which live as long as the listener: every generation of a front
	// Server shares its cum, so a reload neither resets a series nor
	// loses what requests still finishing on an old generation count.
	set         *metrics.Set
	cum         *metrics.Set
	extraSets   []*metrics.Set
	duration    *metrics.PrometheusHistogram
	responses   *codeCounters // sluice_responses_total{code}
	upstreamMet map[*upstream.Pool]*codeCounters
	poolErrs    []poolErrorBodies   // by pool index
	aliasJSON   []map[string][]byte // by pool index: alias → JSON-quoted name sent upstream
	modelMet    *modelMetricSet
	streamCuts  streamCuts
	models      *modellist.Cache // GET /v1/models

	// certs and tlsConfig serve clients TLS (tls.go); nil without.
	certs     *CertStore
	tlsConfig *tls.Config

	fs        *fasthttp.Server
	statePool sync.Pool
	watch     disconnectWatcher
	shutdown  chan struct{}
	once      sync.Once
	listeners listenerSet // Serve's listeners, closed by Shutdown

	gen generation // reload.go
}

// NewServer validates cfg and builds a Server. The router starts not
// ready: call Router().SetReady(true) once everything the server depends
// on (plugins) is loaded.
func NewServer(cfg *Config, opts Options) (*Server, error) {
	return buildServer(cfg, opts, nil)
}

// buildServer builds a Server; front is nil for the server that owns the
// listener, or that server when Reload builds a generation for it (the
// generation shares its router: slots, readiness and request counters).
func buildServer(cfg *Config, opts Options, front *Server) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("proxy: nil config")
	}
	rc, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var router *Router
	var cum *metrics.Set
	if front != nil {
		router, cum = front.router, front.cum
	} else {
		router, cum = NewRouter(cfg), metrics.NewSet()
	}
	var s *Server
	ps := upstream.New(rc, upstream.Options{
		Log:            log,
		OnAvailability: func(anyUp bool) { s.setAvailability(anyUp) },
		Cumulative:     cum,
	})
	s = &Server{
		cfg:       cfg,
		router:    router,
		pools:     ps,
		filters:   opts.Filters,
		log:       log,
		accessLog: cfg.Log.AccessLog(),
		timeout:   time.Duration(cfg.Timeout),
		bodyLimit: int(cfg.MaxRequestBodySize),
		errBodies: newErrorBodies(cfg.OpenAICompat),
		set:       metrics.NewSet(),
		cum:       cum,
		extraSets: opts.Metrics,
		shutdown:  make(chan struct{}),
	}
	s.gen.init(s, front, opts.OnRetire)
	s.modelMet = newModelMetricSet(cum, cfg)
	if front != nil {
		s.modelMet.inherit(front.current().modelMet)
	}
	s.streamCuts.init(cum)
	s.models = modellist.New(cfg, ps, s.timeout)
	s.ids.init()
	s.routes = compileRoutes(cfg, ps)
	s.duration = cum.GetOrCreatePrometheusHistogramExt("sluice_request_duration_seconds", exposition.LatencyBuckets)
	s.responses = newResponseCodes(cum)
	registerBuildInfo(s.set)
	s.watch.init(cum)
	s.upstreamMet = make(map[*upstream.Pool]*codeCounters, len(ps.List()))
	for i, p := range ps.List() {
		s.upstreamMet[p] = newUpstreamCodes(cum, p.Name())
		s.poolErrs = append(s.poolErrs, newPoolErrorBodies(cfg.OpenAICompat, p.Name()))
		s.aliasJSON = append(s.aliasJSON, aliasJSON(rc.Upstreams[i].ModelAliases))
	}
	s.statePool.New = func() any { return newRequestState(s) }
	if rc.TLS != nil {
		s.certs = newCertStore(rc.TLS)
		s.tlsConfig = s.certs.serverTLSConfig(rc.TLS.MinVersion)
	}
	s.bodyTimeout = rc.ClientBodyTimeout
	s.bodies.max = rc.MaxRequestBodyBuffer
	s.fs = &fasthttp.Server{
		Handler:               s.serveEdge,
		Name:                  "sluice",
		StreamRequestBody:     true,
		MaxRequestBodySize:    s.bodyLimit,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// The head, from its first byte, must arrive within
		// client_header_timeout (fasthttp's ReadTimeout restarts at a
		// request's first byte); the body is read by the handler under
		// client_body_timeout (read.go). Keep-alive waits between
		// requests are bounded by IdleTimeout.
		ReadTimeout: rc.ClientHeaderTimeout,
		IdleTimeout: 90 * time.Second,
		// The read buffer bounds the head: past it fasthttp reports
		// ErrSmallBuffer, answered 431 or 414 (handleParseError).
		ReadBufferSize: rc.MaxRequestHeaderSize,
		// Readers are taken from the pool only once a new connection's
		// first byte arrives, so a connection that never sends holds no
		// read buffer and is closed silently at client_header_timeout, as
		// nginx does; write buffers go back to the pool after each
		// response.
		ReduceMemoryUsage: true,
		// A proxy forwards multipart bodies; it does not parse them (nor
		// spool them to temporary files before the handler runs).
		DisablePreParseMultipartForm: true,
		// Parse errors carry sentinel errors (ErrUnsupportedTransferEncoding…)
		// and no request bytes.
		SecureErrorLogMessage: true,
		ErrorHandler:          s.handleParseError,
		Logger:                fasthttpLogger{s.log},
		CloseOnShutdown:       true,
	}
	return s, nil
}

// Router returns the server's router (slots, readiness, health).
func (s *Server) Router() *Router { return s.router }

// NewExchange returns an Exchange that belongs to no request, bound to
// the current generation's pools and admission counts as a request's is,
// so that a Filter can be driven directly (benchmarks, filter tests)
// with the properties and foreign functions that read the pools. Its
// request is empty: the caller fills it. It is not pooled and lives as
// long as the caller keeps it; like any Exchange it is not safe for
// concurrent use.
func (s *Server) NewExchange() *Exchange {
	c := s.current()
	ex := &Exchange{pools: c.pools, router: c.router, routeOf: c.routeOfExchange}
	ex.resumeCh = make(chan struct{}, 1)
	return ex
}

// Config returns the configuration of the generation serving new
// requests (read-only): the last one Reload swapped in.
func (s *Server) Config() *Config { return s.current().cfg }

// Certificates returns the store of the certificates served to clients,
// whose Reload re-reads their files; nil when the config has no tls.
func (s *Server) Certificates() *CertStore { return s.certs }

// Handler returns the server's request handler, for tests and embedding.
// It runs each request on the generation current when it arrives
// (Reload).
func (s *Server) Handler() fasthttp.RequestHandler { return s.serveCurrent }

// ListenAndServe listens on the configured address and serves until
// Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr())
	if err != nil {
		return fmt.Errorf("proxy: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve serves on ln until Shutdown; it returns nil after a shutdown. With
// tls in the config it serves TLS on ln (a plain TCP listener). The first
// call starts the upstreams' health checks and metrics scrapes,
// which run until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	if ln = s.listeners.add(ln); ln == nil {
		return nil // Shutdown came first
	}
	s.pools.Start()
	err := s.fs.Serve(&edgeListener{Listener: ln, stop: s.shutdown, linger: &defaultLinger, tls: s.tlsConfig})
	select {
	case <-s.shutdown:
		return nil
	default:
		return err
	}
}

// Shutdown drains the server in the order a load balancer needs
// (Kubernetes keeps routing to a pod for a while after SIGTERM):
//
//  1. StartDrain: /ready answers 503 at once and every answer carries
//     Connection: close, so clients and balancers move away;
//  2. for the config's drain_delay the listener still accepts and
//     serves, so requests routed here in the meantime are answered
//     rather than refused;
//  3. the listener closes, idle connections close (never one with a
//     request on it), and in-flight requests (streams included) run
//     until they end or ctx is done.
//
// ctx bounds the whole drain: the delay ends early when ctx is done.
// Shutdown then stops the health checks and scrapes and closes idle
// upstream connections (Close). It returns nil when every request
// finished, or a *ShutdownError (wrapping ctx.Err()) counting the
// requests still running at the deadline, which the caller cuts by
// exiting. Only the first call waits for drain_delay.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StartDrain()
	first := false
	s.once.Do(func() {
		first = true
		close(s.shutdown) // Serve returns nil once its listener closes
	})
	if d := time.Duration(s.current().cfg.DrainDelay); first && d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	// fasthttp closes only the listeners its Serve has registered; one
	// whose Serve goroutine has not got that far would be served forever.
	s.listeners.close()
	err := s.fs.ShutdownWithContext(ctx)
	s.Close()
	if err != nil && ctx.Err() != nil {
		return &ShutdownError{Running: s.router.Metrics().Active, Connections: int(s.fs.GetOpenConnectionsCount()), Err: err}
	}
	return err
}

// Close stops the server's background work — health checks, metrics
// scrapes, ejection timers — waiting for it to end, and closes idle
// upstream connections; it retires every generation (Reload), the
// current one included. It does not stop listeners or drain requests (Shutdown does,
// then calls Close). Close is idempotent and safe for concurrent use;
// after it, health checks never start again.
func (s *Server) Close() error {
	s.closeGenerations()
	return nil
}

// WriteMetrics writes every metric in the Prometheus text format, each
// family with its HELP and TYPE lines: the router's, the counters and
// histograms every generation shares (the server's and the pools'), then
// those of the current generation (Reload): the server's gauges, the
// client TLS certificates' expiry, the pools' gauges, the extra sets
// (plugins'), then the Go runtime's and the process's (go_*, process_*).
func (s *Server) WriteMetrics(w io.Writer) {
	certs := s.certs // the listener's, which a reload re-reads
	s = s.current()
	exposition.Write(w, func(w io.Writer) {
		s.router.set.WritePrometheus(w)
		s.cum.WritePrometheus(w)
		s.set.WritePrometheus(w)
		if certs != nil {
			certs.writeExpiry(w)
		}
		s.pools.Metrics().WritePrometheus(w)
		for _, set := range s.extraSets {
			set.WritePrometheus(w)
		}
		exposition.WriteRuntime(w)
	})
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}

// Draining. Shutdown (server.go) runs the sequence; these are its parts
// on the request path.
//
// While the server drains, every answer carries Connection: close, so a
// client on a keep-alive connection finishes the request it sent and
// then opens its next connection elsewhere (Envoy's drain sends
// Connection: close the same way). During drain_delay idle keep-alive
// connections stay open and a request arriving on one is answered; when
// the listener closes, fasthttp closes the connections that are idle at
// that moment and never one a request has started on (nginx closes idle
// keep-alive connections at once on a graceful shutdown: drain_delay 0).
// A request a client sends just as its idle connection is closed meets a
// closed connection, the race every keep-alive close has (RFC 9112
// section 9.3.1: clients retry such requests on a new connection).

// StartDrain begins draining without stopping anything: /ready answers
// 503 from now on and every answer carries Connection: close. Shutdown
// calls it first; it is idempotent and safe for concurrent use.
func (s *Server) StartDrain() { s.router.StartDrain() }

// closeIfDraining adds Connection: close to the answer the handler built
// while the server drains.
func (s *Server) closeIfDraining(ctx *fasthttp.RequestCtx) {
	if s.router.drain.Load() {
		ctx.SetConnectionClose()
	}
}

// ShutdownError is what Shutdown returns when its context ended with
// requests still running.
type ShutdownError struct {
	// Running is the number of requests holding an admission slot at the
	// deadline: the ones the caller cuts by exiting.
	Running int64
	// Connections is the number of client connections still open then
	// (requests still being read included).
	Connections int
	// Err is the context's error.
	Err error
}

func (e *ShutdownError) Error() string {
	return "proxy: shutdown: " + strconv.FormatInt(e.Running, 10) + " requests still running: " + e.Err.Error()
}

func (e *ShutdownError) Unwrap() error { return e.Err }

// serveHealth always answers 200 with the health JSON: liveness, not
// readiness.
func (s *Server) serveHealth(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.SetBody(s.appendHealthJSON(nil))
}

// serveReady answers 200 when the router is ready, not draining and has
// an upstream endpoint in rotation, else 503, with the health JSON either
// way.
func (s *Server) serveReady(ctx *fasthttp.RequestCtx) {
	if !s.router.IsReady() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.SetBody(s.appendHealthJSON(nil))
}

// appendHealthJSON appends the router's health and, per pool, its
// endpoints in rotation:
//
//	{"status":"healthy","active_requests":0,"max_concurrent_requests":128,
//	 "upstreams":{"a":{"healthy":2,"total":3}}}
func (s *Server) appendHealthJSON(b []byte) []byte {
	b = appendHealthJSON(b, s.router.Health())
	b = append(b[:len(b)-1], `,"upstreams":{`...)
	for i, p := range s.pools.List() {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonspan.AppendString(b, p.Name())
		b = append(b, `:{"healthy":`...)
		b = strconv.AppendInt(b, int64(p.Healthy()), 10)
		b = append(b, `,"total":`...)
		b = strconv.AppendInt(b, int64(len(p.Endpoints())), 10)
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

func appendHealthJSON(b []byte, h Health) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, h.Status...)
	b = append(b, `","active_requests":`...)
	b = strconv.AppendInt(b, h.ActiveRequests, 10)
	b = append(b, `,"max_concurrent_requests":`...)
	b = strconv.AppendInt(b, h.MaxConcurrentRequests, 10)
	return append(b, '}')
}

// PoolHealth counts a pool's endpoints in rotation.
type PoolHealth struct {
	Healthy int `json:"healthy"`
	Total   int `json:"total"`
}

// UpstreamHealth returns, per pool name, how many endpoints are in
// rotation. Safe for concurrent use.
func (s *Server) UpstreamHealth() map[string]PoolHealth {
	s = s.current()
	m := make(map[string]PoolHealth, len(s.pools.List()))
	for _, p := range s.pools.List() {
		m[p.Name()] = PoolHealth{Healthy: p.Healthy(), Total: len(p.Endpoints())}
	}
	return m
}

// The admin listener (config admin: {hostname, port}). When it is
// configured, /metrics is served there only: the client-facing port
// answers /metrics with 404, so an internet-facing port does not publish
// upstream addresses (sluice_endpoint_* labels), model names and plugin
// internals. /health and /ready answer on both ports, so probes may use
// either. The listener itself is net/http, not fasthttp: it serves a
// scraper and probes, never the request path, and the profiles of
// net/http/pprof can be mounted beside it.

// AdminHandler returns the admin listener's handler: GET /health,
// /ready and, unless enable_metrics is false, /metrics, answered as on
// the main port; other paths get 404. Mount it at "/" of a mux to add
// more (cmd/sluice adds /debug/pprof/ there). It is safe for concurrent
// use and valid for the Server's lifetime.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		s.writeAdminHealth(w, http.StatusOK)
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		status := http.StatusOK
		if !s.router.IsReady() {
			status = http.StatusServiceUnavailable
		}
		s.writeAdminHealth(w, status)
	})
	if s.cfg.EnableMetrics {
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", string(strContentTypeText))
			s.WriteMetrics(w)
		})
	}
	return mux
}

func (s *Server) writeAdminHealth(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", string(strApplicationJSON))
	w.WriteHeader(status)
	_, _ = w.Write(s.appendHealthJSON(nil))
}

// listenerSet holds the listeners Serve was given, so that Shutdown
// closes them all, whether or not fasthttp's Serve has registered them
// yet (a Serve started just before a Shutdown would otherwise accept
// forever), and a Serve called after Shutdown returns at once. It is safe
// for concurrent use.
type listenerSet struct {
	mu     sync.Mutex
	lns    []net.Listener
	closed bool
}

// add records ln and returns it wrapped so that closing it twice (here
// and by fasthttp's Shutdown) is not an error; after close it closes ln
// and returns nil.
func (l *listenerSet) add(ln net.Listener) net.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = ln.Close()
		return nil
	}
	w := &closeOnceListener{Listener: ln}
	l.lns = append(l.lns, w)
	return w
}

// close closes every listener added, and every one added later.
func (l *listenerSet) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, ln := range l.lns {
		_ = ln.Close()
	}
	l.lns = nil
}

// closeOnceListener closes its listener once; later calls return the
// first call's result.
type closeOnceListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *closeOnceListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
