package proxytest

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Response headers set by every route.
const (
	// HeaderRequestID echoes the request's x-request-id header, when it
	// has one, so tests can check that a proxy propagates it.
	HeaderRequestID = "X-Proxytest-Request-Id"
	// HeaderUpstreamName carries Options.Name, when it is set.
	HeaderUpstreamName = "X-Upstream-Name"
)

// RecordedRequest is what the server received in one request. Values
// returned by Server.LastRequest are copies the caller may keep and modify.
type RecordedRequest struct {
	Method   string
	Path     string // r.URL.Path
	RawQuery string // r.URL.RawQuery, without '?'
	Host     string // r.Host (the Host header is not in Header)
	Header   http.Header
	Body     []byte // nil when the body was empty or over Options.MaxBodyBytes
}

func (rr RecordedRequest) clone() RecordedRequest {
	rr.Header = rr.Header.Clone()
	if rr.Body != nil {
		rr.Body = append([]byte(nil), rr.Body...)
	}
	return rr
}

// Server is a fake inference upstream. Create one with NewServer (or
// NewUnstartedServer and Start) and release it with Close. Its methods are
// safe for concurrent use.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port", without a trailing
	// slash. Set by Start.
	URL string
	// Addr is the listener's "host:port". Set by Start.
	Addr string
	// Listener is the listener Start serves on. It may be set between
	// NewUnstartedServer and Start; when nil, Start listens on
	// 127.0.0.1:0. Close closes it.
	Listener net.Listener

	opts      atomic.Pointer[Options]       // never nil; defaults applied
	engine    atomic.Pointer[EngineMetrics] // nil: serve own metrics
	unhealthy atomic.Bool
	last      atomic.Pointer[RecordedRequest]

	requests     atomic.Int64
	cancelled    atomic.Int64
	inFlight     atomic.Int64
	healthChecks atomic.Int64
	scrapes      atomic.Int64
	seq          atomic.Int64 // completion ids
	created      int64        // Unix time of creation, reported by /v1/models

	mu      sync.RWMutex // guards closing, started and srv; orders wg.Add before wg.Wait
	closing bool
	started bool
	srv     *http.Server
	wg      sync.WaitGroup // running handlers
	done    chan struct{}  // closed by Close: waits end, hung handlers return
}

// NewServer returns a Server listening on 127.0.0.1 on a free port and
// already serving. It panics if opts is invalid (see Options.Validate) or if
// it cannot listen, as httptest.NewServer does. The caller must Close it.
func NewServer(opts Options) *Server {
	s := NewUnstartedServer(opts)
	s.Start()
	return s
}

// NewUnstartedServer returns a Server that does not listen yet: set
// Listener if needed, then call Start, or serve Handler on your own
// http.Server. It panics if opts is invalid (see Options.Validate).
func NewUnstartedServer(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	s := &Server{done: make(chan struct{}), created: time.Now().Unix()}
	o := opts.withDefaults()
	s.opts.Store(&o)
	return s
}

// Start serves on s.Listener, listening on 127.0.0.1:0 first when it is
// nil, and sets URL and Addr. It panics when called twice, after Close, or
// when it cannot listen.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("proxytest: Server already started")
	}
	if s.closing {
		panic("proxytest: Start called after Close")
	}
	if s.Listener == nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(fmt.Sprintf("proxytest: failed to listen on 127.0.0.1: %v", err))
		}
		s.Listener = l
	}
	s.started = true
	s.Addr = s.Listener.Addr().String()
	s.URL = "http://" + s.Addr
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(s.Listener) //nolint:errcheck // returns ErrServerClosed on Close
}

// Close stops the server: it closes the listener and every connection,
// releases hung requests and pending delays, and waits for the running
// handlers (also those served through Handler elsewhere) to return.
// Requests that arrive through Handler after Close are answered 503.
// Close may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	close(s.done)
	srv, l := s.srv, s.Listener
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	} else if l != nil {
		_ = l.Close()
	}
	s.wg.Wait()
}

// Handler returns the server's HTTP handler, for serving it on a listener
// of your own (cmd/sluice -demo). Its counters and settings are the
// Server's. It stays valid until Close.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Options returns the options in use, with defaults filled in.
func (s *Server) Options() Options {
	o := *s.opts.Load()
	o.Models = append([]string(nil), o.Models...)
	return o
}

// SetOptions replaces the options for requests that arrive afterwards;
// requests already running keep the options they started with. It panics
// if o is invalid (see Options.Validate).
func (s *Server) SetOptions(o Options) {
	if err := o.Validate(); err != nil {
		panic(err)
	}
	o = o.withDefaults()
	s.opts.Store(&o)
}

// SetFailMode changes only Options.Fail, atomically with respect to
// concurrent SetOptions and SetFailMode calls. It panics on an unknown mode.
func (s *Server) SetFailMode(m FailMode) {
	if !m.valid() {
		panic(fmt.Sprintf("proxytest: SetFailMode(%d): not a known FailMode", int(m)))
	}
	for {
		old := s.opts.Load()
		o := *old
		o.Fail = m
		if s.opts.CompareAndSwap(old, &o) {
			return
		}
	}
}

// SetHealthy makes GET /health answer 200 (true, the initial state) or
// 503 (false). Other routes are not affected.
func (s *Server) SetHealthy(ok bool) { s.unhealthy.Store(!ok) }

// Healthy reports what GET /health answers.
func (s *Server) Healthy() bool { return !s.unhealthy.Load() }

// Requests returns the number of requests received, excluding /health and
// /metrics.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Cancelled returns the number of requests whose client went away before
// the response ended, as seen while waiting (delays, FailHang) or writing.
// A request ended by Close is not counted.
func (s *Server) Cancelled() int64 { return s.cancelled.Load() }

// InFlight returns the number of requests being answered, excluding
// /health and /metrics.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// HealthChecks returns the number of requests to /health.
func (s *Server) HealthChecks() int64 { return s.healthChecks.Load() }

// Scrapes returns the number of requests to /metrics.
func (s *Server) Scrapes() int64 { return s.scrapes.Load() }

// LastRequest returns a copy of the last request received, excluding
// /health and /metrics; the zero value before the first.
func (s *Server) LastRequest() RecordedRequest {
	if rr := s.last.Load(); rr != nil {
		return rr.clone()
	}
	return RecordedRequest{}
}

// enter registers a running handler; false once Close has begun.
func (s *Server) enter() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "proxytest: server closed", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	opts := s.opts.Load()
	h := w.Header()
	if id := r.Header.Get("X-Request-Id"); id != "" {
		h.Set(HeaderRequestID, id)
	}
	if opts.Name != "" {
		h.Set(HeaderUpstreamName, opts.Name)
	}
	switch r.URL.Path {
	case "/health":
		s.healthChecks.Add(1)
		s.serveHealth(w, r)
		return
	case "/metrics":
		s.scrapes.Add(1)
		s.serveMetrics(w, r, opts)
		return
	}
	s.requests.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	x := &exchange{s: s, w: w, r: r, opts: opts, api: apiFor(r.URL.Path)}
	x.serve()
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if s.unhealthy.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"proxytest: set unhealthy","error_type":"healthcheck"}`))
		return
	}
	_, _ = w.Write([]byte("{}"))
}

// allowMethod answers 405 and returns false unless r uses one of methods.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	allow := methods[0]
	for _, m := range methods[1:] {
		allow += ", " + m
	}
	w.Header().Set("Allow", allow)
	http.Error(w, fmt.Sprintf("proxytest: method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow), http.StatusMethodNotAllowed)
	return false
}
