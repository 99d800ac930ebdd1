package proxy

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// Reload. A generation is everything built from one configuration: a
// Server's routes, pools (with their health checks and queues), filters,
// error bodies, model and upstream metrics and the pooled request state.
// The Server that owns the listener is the first generation; Reload
// builds the next one (buildServer with the front's router), starts its
// pools and swaps it in with one atomic store. The fasthttp handler
// (serveEdge) takes a reference on the generation current when a request
// arrives and the request runs on it to the end, its streamed body
// included (respond.go holds the generation until finish). A generation
// that is no longer current is retired when its last reference goes: its
// disconnect watcher and pools are closed (health checks stop, idle
// upstream connections close) and its Options.OnRetire runs, where the
// caller closes the plugins only it used.
//
// What carries over is what belongs to the listener: the Router
// (admission slots, readiness, the sluice_requests_* counters), the
// counters and histograms (Server.cum: responses, durations, tokens,
// disconnects, truncated streams, the pools' counters), the fasthttp
// server and its connections (a keep-alive connection's next request
// runs on the new generation). Each generation finds its counters and
// histograms in the front's cum by series name (GetOrCreate), so a
// reload resets none and a request finishing on an old generation counts
// into the series /metrics writes. The series of a pool, endpoint or
// model a reload removed stay in cum, frozen, until the process exits.
// Gauges (queue depth, in flight, healthy endpoints) read a generation's
// own objects and live in its own sets: only the current one's are
// written.

// generation is a Server's reload state.
type generation struct {
	front    *Server                // the server owning the listener; nil on it
	cur      atomic.Pointer[Server] // front only: the current generation; nil = the front
	refs     atomic.Int64           // requests running on it, +1 while it is current
	onRetire func()
	once     sync.Once

	mu     sync.Mutex // front only: orders Reload and Close
	live   []*Server  // front only: generations not retired yet
	closed bool       // front only: Close ran
}

func (g *generation) init(s, front *Server, onRetire func()) {
	g.front, g.onRetire = front, onRetire
	g.refs.Store(1)
	if front == nil {
		g.live = []*Server{s}
	}
}

// ErrReloadClosed is returned by Reload once the server is shutting down
// or closed.
var ErrReloadClosed = errors.New("proxy: reload: the server is shutting down")

// Reload swaps in a new configuration and filters without a restart. It
// builds the new generation (routes, upstream pools, metrics) off the
// request path, seeds each new endpoint's active-check health from the
// running endpoint of the same pool and address, swaps, and starts the
// new pools' health checks: requests that arrive from then on run on the
// new generation; requests in flight (streams, requests paused in a
// filter, requests waiting in a pool's queue) finish on the one they
// started on, which is retired when its last request ends (see
// Options.OnRetire).
//
// Admission slots carry over: active requests keep theirs and count
// against the new max_concurrent_requests, which applies at once to new
// requests. Lowering it below the requests active cuts none of them;
// new requests get 429 until enough finish.
//
// Reload refuses, changing nothing, a config that does not resolve or
// that changes a setting only a restart can apply (hostname, port… see
// config.RestartChanges): the error is a *config.RestartError naming each.
// It returns ErrReloadClosed after Shutdown or Close. Reload is safe for
// concurrent use (reloads run one at a time) and must be called on the
// Server NewServer returned. On error, opts.Filters stay the caller's.
func (s *Server) Reload(cfg *Config, opts Options) error {
	if s.gen.front != nil {
		return errors.New("proxy: reload: not the server that owns the listener")
	}
	if cfg == nil {
		return errors.New("proxy: reload: nil config")
	}
	s.gen.mu.Lock()
	defer s.gen.mu.Unlock()
	select {
	case <-s.shutdown:
		return ErrReloadClosed
	default:
	}
	if s.gen.closed {
		return ErrReloadClosed
	}
	old := s.current()
	if err := old.checkReload(cfg); err != nil {
		return err
	}
	g, err := buildServer(cfg, opts, s)
	if err != nil {
		return err
	}
	g.pools.InheritHealth(old.pools)
	s.gen.live = append(s.gen.live, g)
	s.router.setMax(cfg.MaxConcurrentRequests)
	s.gen.cur.Store(g)
	// Readiness follows the new pools from now on (setAvailability
	// ignores the old ones); their checks start after the swap, so none
	// of their reports can be overwritten by this one.
	s.router.setUpstreamsDown(!g.anyUp())
	g.pools.Start()
	old.leave() // the reference it held as the current generation
	return nil
}

// CheckReload reports whether Reload would accept cfg: nil, or the error
// Reload would return for it (it resolves cfg and compares the settings
// only a restart can apply), without building anything. Callers use it
// to refuse a reload before they load plugins for it. Safe for
// concurrent use.
func (s *Server) CheckReload(cfg *Config) error {
	if cfg == nil {
		return errors.New("proxy: reload: nil config")
	}
	return s.current().checkReload(cfg)
}

func (s *Server) checkReload(cfg *Config) error {
	running, err := s.cfg.Resolve()
	if err != nil {
		return err
	}
	next, err := cfg.Resolve()
	if err != nil {
		return err
	}
	if ch := config.RestartChanges(running, next); len(ch) > 0 {
		return &config.RestartError{Changes: ch}
	}
	return nil
}

// current returns the generation new requests run on.
func (s *Server) current() *Server {
	if c := s.gen.cur.Load(); c != nil {
		return c
	}
	return s
}

// enter returns the current generation with a reference taken for one
// request; the caller calls leave on it.
func (s *Server) enter() *Server {
	for {
		g := s.current()
		if g.gen.tryRef() {
			return g
		}
		// g lost its last reference between the load and tryRef, so a
		// Reload has already stored its successor: load again.
	}
}

// tryRef takes a reference unless the count already reached zero (the
// generation is being retired: it must not be used again).
func (g *generation) tryRef() bool {
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// hold takes one more reference for a request that already holds one.
func (s *Server) hold() { s.gen.refs.Add(1) }

// leave drops a reference; the last one retires the generation, on its
// own goroutine (closing pools waits for their health checks).
func (s *Server) leave() {
	if s.gen.refs.Add(-1) == 0 {
		go s.retire()
	}
}

// retire closes the generation's background work and hands it back to
// its owner, once.
func (s *Server) retire() {
	s.gen.once.Do(func() {
		s.watch.close()
		s.pools.Close()
		f := s.gen.front
		if f == nil {
			f = s
		}
		f.gen.mu.Lock()
		for i, g := range f.gen.live {
			if g == s {
				f.gen.live = append(f.gen.live[:i], f.gen.live[i+1:]...)
				break
			}
		}
		f.gen.mu.Unlock()
		if s.gen.onRetire != nil {
			s.gen.onRetire()
		}
	})
}

// closeGenerations retires every generation not retired yet, the current
// one included, and makes later Reloads fail.
func (s *Server) closeGenerations() {
	if s.gen.front != nil {
		s.retire()
		return
	}
	s.gen.mu.Lock()
	s.gen.closed = true
	live := append([]*Server(nil), s.gen.live...)
	s.gen.mu.Unlock()
	for _, g := range live {
		g.retire()
	}
}

// setAvailability is the pools' OnAvailability: only the current
// generation's pools decide readiness.
func (s *Server) setAvailability(anyUp bool) {
	front := s
	if s.gen.front != nil {
		front = s.gen.front
	}
	if front.current() == s {
		s.router.setUpstreamsDown(!anyUp)
	}
}

// anyUp reports whether an endpoint of any pool is in rotation.
func (s *Server) anyUp() bool {
	for _, p := range s.pools.List() {
		if p.Healthy() > 0 {
			return true
		}
	}
	return false
}

// setMax changes the number of admission slots (n ≤ 0: the default).
// Requests holding a slot keep it.
func (r *Router) setMax(n int) {
	if n <= 0 {
		n = DefaultMaxConcurrentRequests
	}
	r.max.Store(int64(n))
}
