package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy/internal/peek"
)

// Noticing a client that goes away while its request is in the proxy.
//
// fasthttp reads a client's connection only between requests: from the
// moment a request's body is read until its response is written, nothing
// reads the socket, and a client's FIN or RST goes unnoticed until the
// request moves on by itself: a queued request would reach the head of its
// pool's queue and be sent to an engine that generates for nobody; a
// request a plugin paused would wait out the pause timeout; one waiting on
// the engine would wait for its answer. nginx checks such connections with
// recv(MSG_PEEK) (ngx_http_upstream_check_broken_connection, while it
// connects to and waits on the upstream) and ends the request with 499;
// Envoy resets the stream on a downstream reset, gives the filters their
// onDestroy (Proxy-Wasm: on_log, on_done) and cancels the upstream
// request. Sluice does the same, from admission to the end of the
// response, without a goroutine per connection:
//
//   - a request registers its client's connection when it is admitted
//     (admit) and stays registered until finish; while it writes to an
//     upstream and reads the answer (roundTrip) the registration also holds
//     that upstream connection;
//   - one watcher goroutine per Server sweeps the registered connections
//     every disconnectCheckInterval with a non-blocking recv(1 byte,
//     MSG_PEEK|MSG_DONTWAIT) through syscall.RawConn.Control: 0 bytes (EOF)
//     or a reset means the client is gone, EAGAIN that it is there; when
//     bytes are pending (pipelined requests, a TLS close_notify) the TCP
//     state tells whether a FIN or RST came after them. Nothing is
//     consumed;
//   - for a gone client it marks the request, closes the upstream
//     connection if one is held (the engine sees the close and stops
//     generating; the blocked read fails at once), sends on the request's
//     gone channel, which ends a wait in the pool's queue
//     (upstream.Waiter.CancelOn: the place goes to the next waiter) or a
//     plugin's pause (waitResume) at once, and counts it in
//     sluice_client_disconnects_total{phase} by what the request was doing
//     (phase* below). A request between those waits (a plugin callback
//     running, the route being chosen) sees the mark before its next step
//     (callFilter, send). The request then ends as any failed one does:
//     finish gives the filters their OnDone, frees the endpoint and
//     admission slots once, never gives a closed connection back to the
//     pool, and logs status 499.
//
// Like nginx, a client that half-closes (shutdown(SHUT_WR)) after its
// request counts as gone. Before admission the body read itself notices a
// client that leaves (a truncated body is refused, read.go); no slot is
// held then.
//
// Connections that are not a syscall.Conn (in-memory test listeners) are
// not watched; for a *tls.Conn the socket under it is. Only Linux peeks
// (internal/peek); elsewhere nothing is watched.

// disconnectCheckInterval is how often the watcher checks the registered
// connections: a gone client is noticed within about this long.
const disconnectCheckInterval = 250 * time.Millisecond

// watchShards spreads registrations over this many locks.
const watchShards = 16

// statusClientClosedRequest is nginx's 499: the client closed the
// connection before the response was complete.
const statusClientClosedRequest = 499

// errClientGone ends a request whose client went away.
var errClientGone = errors.New("proxy: client closed the connection before the response ended")

// Phases of a watched request: what it was doing when its client left,
// the value of sluice_client_disconnects_total's phase label.
const (
	phaseWaiting   = iota // "waiting": sent upstream, no response head yet
	phaseStreaming        // "streaming": the response is being relayed
	phaseAdmitted         // "admitted": admitted, not yet queued, paused or sent
	phaseQueued           // "queued": waiting in the pool's queue for an endpoint
	phasePaused           // "paused": paused by a plugin (callout, tick, queue)
	numPhases
)

// phaseNames are the phase label values, by phase.
var phaseNames = [numPhases]string{"waiting", "streaming", "admitted", "queued", "paused"}

// disconnectWatcher holds the client connections of admitted requests,
// and sweeps them. One per Server; its goroutine runs only while
// some connection is registered, from the first registration until close.
type disconnectWatcher struct {
	shards [watchShards]watchShard
	next   atomic.Uint32 // shard of the next clientWatch

	running  atomic.Bool   // the goroutine was started
	sleeping atomic.Bool   // the goroutine waits for wake (or is not started)
	wake     chan struct{} // capacity 1
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex // guards started and closed
	started bool
	closed  bool

	gone     [numPhases]*metrics.Counter // by phase
	interval time.Duration               // disconnectCheckInterval; tests shorten it before the first request

	// used by the watcher goroutine only
	buf    [1]byte
	peeked bool             // result of the last peek: the client is gone
	peekFn func(fd uintptr) // calls peekClosed; built once, so a sweep allocates nothing
}

// watchShard is a lock and the watches registered under it, on its own
// cache line.
type watchShard struct {
	mu      sync.Mutex
	entries []*clientWatch
	_       [64 - 32]byte
}

func (w *disconnectWatcher) init(set *metrics.Set) {
	w.wake = make(chan struct{}, 1)
	w.stop = make(chan struct{})
	w.done = make(chan struct{})
	w.sleeping.Store(true)
	w.interval = disconnectCheckInterval
	for p, name := range phaseNames {
		w.gone[p] = set.GetOrCreateCounter(`sluice_client_disconnects_total{phase="` + name + `"}`)
	}
	w.peekFn = func(fd uintptr) { w.peeked = peek.Closed(fd, &w.buf) }
}

// start launches the goroutine unless it runs or the watcher is closed.
func (w *disconnectWatcher) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return
	}
	w.started = true
	w.running.Store(true)
	go w.run()
}

// close stops the goroutine and waits for it. Idempotent. Requests still
// registered are no longer checked.
func (w *disconnectWatcher) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	started := w.started
	close(w.stop)
	w.mu.Unlock()
	if started {
		<-w.done
	}
}

func (w *disconnectWatcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		if w.idle() {
			t.Stop()
			select {
			case <-w.wake:
			case <-w.stop:
				return
			}
			w.sleeping.Store(false)
			t.Reset(w.interval)
		}
		select {
		case <-t.C:
			w.sweep()
		case <-w.stop:
			return
		}
	}
}

// idle reports whether nothing is registered, leaving sleeping set if so.
// sleeping is set before the shards are looked at, and a registration
// looks at sleeping after adding itself: one of the two sees the other.
func (w *disconnectWatcher) idle() bool {
	w.sleeping.Store(true)
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.Lock()
		n := len(sh.entries)
		sh.mu.Unlock()
		if n > 0 {
			w.sleeping.Store(false)
			return false
		}
	}
	return true
}

// sweep checks every registered connection once and ends the requests
// whose client is gone. It holds one shard's lock while it checks that
// shard: a registration waits at most for one shard's peeks.
func (w *disconnectWatcher) sweep() {
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.Lock()
		for j := 0; j < len(sh.entries); {
			cw := sh.entries[j]
			if !w.peekGone(cw) {
				j++
				continue
			}
			cw.gone.Store(true)
			if cw.up != nil {
				closeUpstreamConn(cw.up)
			}
			w.gone[cw.phase.Load()].Inc()
			sh.removeLocked(cw)
			select { // ends a queue wait or a pause; never blocks
			case cw.goneCh <- struct{}{}:
			default:
			}
		}
		sh.mu.Unlock()
	}
}

// peekGone peeks at cw's client connection. Errors other than a peer's
// close or reset (a conn closed by the server itself) count as present:
// the request ends through its own path.
func (w *disconnectWatcher) peekGone(cw *clientWatch) bool {
	if cw.rawOf != cw.client {
		sc, ok := cw.client.(syscall.Conn)
		if !ok {
			return false
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		cw.raw, cw.rawOf = raw, cw.client
	}
	w.peeked = false
	// Control, not Read: it takes no read lock and ignores read deadlines
	// (fasthttp's idle deadline may be past during a long stream); the fd
	// is non-blocking, so the peek never waits.
	if err := cw.raw.Control(w.peekFn); err != nil {
		return false
	}
	return w.peeked
}

func (sh *watchShard) removeLocked(cw *clientWatch) {
	last := len(sh.entries) - 1
	moved := sh.entries[last]
	sh.entries[cw.idx] = moved
	moved.idx = cw.idx
	sh.entries[last] = nil
	sh.entries = sh.entries[:last]
	cw.idx = -1
}

// clientWatch is a request's registration with the disconnect watcher,
// embedded in requestState. The owner (the request's goroutine of the
// moment) calls its methods; the watcher reads client and up and writes
// idx, gone and the raw cache under the shard's lock.
type clientWatch struct {
	w      *disconnectWatcher
	shard  *watchShard
	client net.Conn // the client's socket; nil: not watchable
	up     net.Conn // the upstream connection to close when the client goes
	idx    int      // position in shard.entries; -1 when not registered
	on     bool     // owner's view: registered (the watcher may have removed it)
	phase  atomic.Uint32
	gone   atomic.Bool // the client went away; set by the watcher
	// goneCh gets one send when the watcher marks the client gone: a wait
	// in a pool's queue or a plugin's pause selects on it. Capacity 1,
	// made once with the pooled state; reset drains it.
	goneCh chan struct{}

	raw   syscall.RawConn // the watcher's cache of client's RawConn
	rawOf net.Conn
}

// initWatch binds cw to w and picks its shard, round robin.
func (cw *clientWatch) initWatch(w *disconnectWatcher) {
	cw.w = w
	cw.shard = &w.shards[w.next.Add(1)%watchShards]
	cw.idx = -1
	cw.goneCh = make(chan struct{}, 1)
}

// setClient records the client's connection to watch: c itself when it is
// a syscall.Conn, the socket under a *tls.Conn; nil otherwise.
func (cw *clientWatch) setClient(c net.Conn) {
	if !peek.Supported {
		return
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if _, ok := c.(syscall.Conn); !ok {
		c = nil
	}
	cw.client = c
}

// begin registers the admitted request, in the admitted phase and without
// an upstream connection, until unwatch. It does nothing when the client
// cannot be watched.
func (cw *clientWatch) begin() {
	if cw.client == nil {
		return
	}
	cw.phase.Store(phaseAdmitted)
	sh := cw.shard
	sh.mu.Lock()
	cw.idx = len(sh.entries)
	sh.entries = append(sh.entries, cw)
	sh.mu.Unlock()
	cw.on = true
	if w := cw.w; w.sleeping.Load() {
		if !w.running.Load() {
			w.start()
		}
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// attach gives the registration up, the upstream connection the watcher
// closes if the client goes. It reports
// false when the client is gone already: up was not attached, and the
// caller drops it. Without a registration it attaches nothing and reports
// true.
func (cw *clientWatch) attach(up net.Conn) bool {
	if !cw.on {
		return true
	}
	sh := cw.shard
	sh.mu.Lock()
	if cw.gone.Load() { // set under this lock: the watcher saw no up
		sh.mu.Unlock()
		return false
	}
	cw.up = up
	sh.mu.Unlock()
	return true
}

// detach takes the upstream connection back from the registration, which
// stays, and reports whether the client went away (the watcher then
// closed that connection). After it the watcher no longer touches the
// connection, so it may go back to the upstream pool.
func (cw *clientWatch) detach() (gone bool) {
	if cw.on {
		sh := cw.shard
		sh.mu.Lock()
		cw.up = nil
		sh.mu.Unlock()
	}
	return cw.gone.Load()
}

// setPhase labels what the request waits for if its client goes.
func (cw *clientWatch) setPhase(p uint32) { cw.phase.Store(p) }

// unwatch removes the registration, if any, and reports whether the
// client went away (the watcher then closed the upstream connection, if
// one was attached). After it the watcher no longer touches cw.
func (cw *clientWatch) unwatch() (gone bool) {
	if cw.on {
		sh := cw.shard
		sh.mu.Lock()
		if cw.idx >= 0 {
			sh.removeLocked(cw)
		}
		cw.up = nil
		sh.mu.Unlock()
		cw.on = false
	}
	return cw.gone.Load()
}

// reset readies cw for the next request; it must not be registered.
func (cw *clientWatch) reset() {
	cw.client = nil
	cw.gone.Store(false)
	cw.phase.Store(phaseWaiting)
	select { // the send of a client gone while nothing waited on it
	case <-cw.goneCh:
	default:
	}
}
