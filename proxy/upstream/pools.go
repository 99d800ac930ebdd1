package upstream

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/valyala/fasthttp"
)

// lbPolicy is a compiled UpstreamConfig.LBPolicy.
type lbPolicy uint8

const (
	lbRoundRobin lbPolicy = iota
	lbLeastRequest
	lbRandom
	lbLeastQueue
)

var lbPolicyNames = [...]string{config.LBRoundRobin, config.LBLeastRequest, config.LBRandom, config.LBLeastQueue}

// upstreamIdleConnTimeout closes idle upstream connections before the
// upstream does: uvicorn (vLLM, SGLang) drops idle keep-alive connections
// after 5s, and a POST written to such a connection fails with
// fasthttp.ErrConnectionClosed, which fasthttp never retries for
// non-idempotent requests.
const upstreamIdleConnTimeout = 4 * time.Second

// Pool is a configured upstream pool: equivalent endpoints that requests
// are balanced over. Its configuration fields are read-only after New;
// the counters are atomics; the wait queue has its own lock. Safe for
// concurrent use.
type Pool struct {
	ps           *Pools
	name         string
	idx          int
	endpoints    []*Endpoint
	policy       lbPolicy
	maxBatch     int64
	retries      int
	queueTimeout time.Duration

	sched       []uint32 // round-robin schedule of endpoint indices
	cum         []uint64 // cumulative weights, for random
	totalWeight uint64
	next        atomic.Uint64 // round-robin cursor and scan offset

	upCount atomic.Int32 // endpoints in rotation
	queue   waitQueue

	anyModel bool                // serves any model
	models   map[string]struct{} // models served, alias targets included
	aliases  map[string]string   // alias → name sent upstream

	ejection       config.PassiveEjectionConfig // effective; ConsecutiveFailures 0 = off
	health         *config.HealthCheckConfig    // effective; nil = no active checks
	metricsPath    string
	scrapeInterval time.Duration

	met poolMetrics
}

// Endpoint is one upstream server: its connection pools, its in-flight
// count and health, and the load its engine last reported. Safe for
// concurrent use.
type Endpoint struct {
	config.Endpoint
	pool   *Pool
	idx    int
	weight int64
	hc     *fasthttp.HostClient // proxied requests, streaming
	probe  *fasthttp.HostClient // health checks, scrapes, /v1/models

	inFlight  atomic.Int64
	up        atomic.Bool // in rotation: not failed by active checks, not ejected
	ejected   atomic.Bool
	fails     atomic.Int32 // consecutive failures (passive)
	ejections atomic.Int32 // consecutive ejections (backoff exponent)

	mu         sync.Mutex // orders state transitions; guards the fields below
	activeDown bool
	ejectTimer *time.Timer
	closed     bool

	// engine signals, float64 bits
	waiting  atomic.Uint64
	running  atomic.Uint64
	kvUsage  atomic.Uint64
	scrapeOK atomic.Bool
	// metricsText is the last successful scrape's body (MetricsText).
	metricsText atomic.Pointer[[]byte]

	ejectTotal   *metrics.Counter
	scrapeErrors *metrics.Counter
}

// Pools indexes the configured pools and owns their background work
// (health checks, scrapes). It is built once, by New; Start and Close are
// idempotent. It knows nothing of the request path: what it tells the
// layer above goes through Options.OnAvailability.
type Pools struct {
	list []*Pool
	m    map[string]*Pool
	log  *slog.Logger
	set  *metrics.Set // the pools' and endpoints' gauges (and cumulative series without Options.Cumulative)

	availMu        sync.Mutex // orders OnAvailability calls
	onAvailability func(anyUp bool)

	stop      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
}

// Options are what the layer above hands the pools: where to log, and
// whom to tell when the last endpoint leaves rotation or one comes back.
type Options struct {
	// Log receives health transitions. Default slog.Default().
	Log *slog.Logger
	// OnAvailability, when set, is called with false when no endpoint of
	// any pool is in rotation any more and with true when one is again
	// (readiness follows it). Calls are serialized; the last is right.
	OnAvailability func(anyUp bool)
	// Cumulative, when set, holds the pools' counters and histograms
	// (sluice_upstream_retries_total, …_rejected_total,
	// …_queue_wait_seconds, sluice_endpoint_ejections_total,
	// …_scrape_errors_total), found or created by name: pools built from
	// a later configuration for the same set (a reload) count into the
	// same objects. The caller writes it on /metrics. Default: nil, and
	// they live in the pools' own set (Metrics) with the gauges.
	Cumulative *metrics.Set
}

// New builds the pools of a resolved configuration. Nothing runs until
// Start.
func New(cfg *config.Resolved, opts Options) *Pools {
	ps := &Pools{m: make(map[string]*Pool, len(cfg.Upstreams)), stop: make(chan struct{}), log: opts.Log, onAvailability: opts.OnAvailability}
	if ps.log == nil {
		ps.log = slog.Default()
	}
	timeout := time.Duration(cfg.Config.Timeout)
	for pi := range cfg.Upstreams {
		uc := &cfg.Upstreams[pi]
		p := &Pool{
			ps:             ps,
			name:           uc.Name,
			idx:            pi,
			maxBatch:       int64(uc.MaxBatchSize),
			retries:        uc.Retries,
			queueTimeout:   uc.QueueTimeout,
			anyModel:       len(uc.Models) == 0,
			ejection:       uc.Ejection,
			health:         uc.HealthCheck,
			metricsPath:    uc.MetricsPath,
			scrapeInterval: uc.ScrapeInterval,
		}
		for i, name := range lbPolicyNames {
			if uc.LBPolicy == name {
				p.policy = lbPolicy(i)
			}
		}
		p.models = make(map[string]struct{}, len(uc.Models))
		for _, m := range uc.Models {
			if m == "*" {
				p.anyModel = true
			}
			p.models[m] = struct{}{}
		}
		p.aliases = make(map[string]string, len(uc.ModelAliases))
		for alias, target := range uc.ModelAliases {
			p.aliases[alias] = target
			p.models[target] = struct{}{} // a name the endpoints answer to
		}
		if len(uc.Models) == 0 && len(uc.ModelAliases) > 0 {
			// Aliases alone name what the pool serves: the aliases and
			// their targets.
			p.anyModel = false
		}
		if uc.TLS != nil && uc.TLS.InsecureSkipVerify {
			ps.log.Warn("upstream: TLS certificates of this pool's https endpoints are not verified (insecure_skip_verify)", "upstream", uc.Name)
		}
		weights := make([]int, len(uc.Endpoints))
		for i, ep := range uc.Endpoints {
			weights[i] = ep.Weight
			e := &Endpoint{
				Endpoint: ep,
				pool:     p,
				idx:      i,
				weight:   int64(ep.Weight),
				hc:       newHostClient(ep, uc.TLS, cfg.Config.MaxConcurrentRequests, timeout),
				probe:    newProbeClient(ep, uc.TLS),
			}
			e.up.Store(true)
			p.endpoints = append(p.endpoints, e)
		}
		p.upCount.Store(int32(len(p.endpoints)))
		p.sched = buildSchedule(weights)
		p.cum = make([]uint64, len(weights))
		for i, w := range weights {
			p.totalWeight += uint64(w)
			p.cum[i] = p.totalWeight
		}
		ps.list = append(ps.list, p)
		ps.m[p.name] = p
	}
	ps.set = metrics.NewSet()
	cum := opts.Cumulative
	if cum == nil {
		cum = ps.set
	}
	ps.registerMetrics(ps.set, cum)
	return ps
}

// start launches the health checks and scrapes; the first call wins.
func (ps *Pools) Start() {
	ps.startOnce.Do(func() {
		select {
		case <-ps.stop: // closed before it started
			return
		default:
		}
		for _, p := range ps.list {
			for _, ep := range p.endpoints {
				if p.health != nil {
					ps.wg.Add(1)
					go ep.healthLoop(ps.stop, &ps.wg)
				}
				if p.metricsPath != "" {
					ps.wg.Add(1)
					go ep.scrapeLoop(ps.stop, &ps.wg)
				}
			}
		}
	})
}

// close stops the background work, waits for it, cancels pending
// ejection timers and closes idle connections. It is idempotent.
func (ps *Pools) Close() {
	ps.closeOnce.Do(func() {
		ps.startOnce.Do(func() {}) // a later start does nothing
		close(ps.stop)
		ps.wg.Wait()
		for _, p := range ps.list {
			for _, ep := range p.endpoints {
				ep.mu.Lock()
				ep.closed = true
				if ep.ejectTimer != nil {
					ep.ejectTimer.Stop()
				}
				ep.mu.Unlock()
			}
		}
	})
	ps.CloseIdle()
}

func (ps *Pools) CloseIdle() {
	for _, p := range ps.list {
		for _, ep := range p.endpoints {
			ep.hc.CloseIdleConnections()
			ep.probe.CloseIdleConnections()
		}
	}
}

// endpointIndex returns the index of the endpoint whose address
// ("host:port") or URL is s, or -1.
func (p *Pool) EndpointIndex(s string) int {
	for i, ep := range p.endpoints {
		if ep.Addr == s || ep.URL == s {
			return i
		}
	}
	return -1
}

// buildSchedule interleaves endpoint indices in proportion to their
// weights (nginx's smooth weighted round robin, unrolled once), so a
// lock-free cursor over it is weighted round robin.
func buildSchedule(weights []int) []uint32 {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	if g == 0 {
		g = 1
	}
	total := 0
	for _, w := range weights {
		total += w / g
	}
	cur := make([]int, len(weights))
	sched := make([]uint32, 0, total)
	for range total {
		best := -1
		for i, w := range weights {
			cur[i] += w / g
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		sched = append(sched, uint32(best))
	}
	return sched
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// upstreamWriteBuffer is the size of the buffer a request is written
// to the upstream through: a request whose head and body fit goes out in
// one write. fasthttp's default, 4 KiB, split an 8 KiB prompt into two
// writes (the buffer's fill, then the rest), a system call more per
// request. Buffers are pooled per endpoint and held only while a request
// is written; a larger body goes out in two writes, its tail unbuffered.
const upstreamWriteBuffer = 32 << 10

// newHostClient returns the client for proxied requests to ep; tc is the
// pool's TLS config (config.Upstream.TLS), used when ep is https: fasthttp
// sets its ServerName (SNI, verified name) to ep's host unless tc has one.
func newHostClient(ep config.Endpoint, tc *tls.Config, slots int, timeout time.Duration) *fasthttp.HostClient {
	d := idleTimeoutDialer{timeout: timeout}
	// Enough connections for every slot: a request never waits for a
	// connection behind other requests.
	maxConns := slots + 16
	return &fasthttp.HostClient{
		Addr:                     ep.Addr,
		IsTLS:                    ep.TLS,
		TLSConfig:                tc,
		Dial:                     d.dial,
		MaxConns:                 maxConns,
		MaxIdleConnDuration:      upstreamIdleConnTimeout,
		WriteTimeout:             timeout,
		StreamResponseBody:       true,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		WriteBufferSize:          upstreamWriteBuffer,
		// One attempt per Do, except a request found unsent on a pooled
		// connection the upstream had closed (staleconn.go); each such
		// attempt closes one pooled connection, so MaxConns+1 attempts
		// always reach a fresh one. Other retries are package proxy's (send.go).
		MaxIdemponentCallAttempts: maxConns + 1,
		RetryIfErr:                retryStaleConn,
	}
}

// maxProbeBody bounds a health, metrics or models answer.
const maxProbeBody = 8 << 20

// newProbeClient returns the client for Sluice's own requests to an
// endpoint; they never share connections with proxied requests.
func newProbeClient(ep config.Endpoint, tc *tls.Config) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                ep.Addr,
		IsTLS:               ep.TLS,
		TLSConfig:           tc,
		Name:                "sluice",
		MaxConns:            4,
		MaxIdleConnDuration: upstreamIdleConnTimeout,
		MaxResponseBodySize: maxProbeBody,
		// With no free connection a probe fails at once (fasthttp's default
		// without MaxConnWaitTimeout); it is tried again at its next tick.
		DisablePathNormalizing: true,
		// A probe is tried again at its next tick, never within one.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                noRetry,
	}
}

// noRetry is the RetryIfErr of every HostClient: fasthttp on its own
// sends a GET, HEAD or PUT again up to 5 times after any error (a
// timeout, a reset), to the same endpoint — duplicated GPU work for an
// inference server, and 5× the timeout before the client's 504. Sluice
// makes one attempt per HostClient.Do; whether to try again, on another
// endpoint, is package proxy's decision alone (send.go) (issue 9).
func noRetry(*fasthttp.Request, int, error) (resetTimeout, retry bool) { return false, false }

// probeGet sends GET path to ep with Sluice's probe client and returns
// the status and body (a copy).
func (ep *Endpoint) ProbeGet(path string, timeout time.Duration) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	scheme := "http://"
	if ep.TLS {
		scheme = "https://"
	}
	req.SetRequestURI(scheme + ep.Addr + path)
	req.Header.SetMethod(fasthttp.MethodGet)
	if err := ep.probe.DoTimeout(req, resp, timeout); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// label is the endpoint's metric labels: upstream="…",endpoint="…".
func (ep *Endpoint) label() string {
	return `upstream="` + escapeLabel(ep.pool.name) + `",endpoint="` + escapeLabel(ep.Addr) + `"`
}

// String names the endpoint in logs.
func (ep *Endpoint) String() string { return ep.pool.name + "/" + ep.Addr }

// idleTimeoutDialer dials connections whose every Read has its own
// deadline: the wait for response headers and each silence between body
// chunks are bounded by timeout, while a stream that keeps producing is
// never cut (fasthttp's ReadTimeout would bound the whole response).
type idleTimeoutDialer struct {
	timeout time.Duration
}

func (d idleTimeoutDialer) dial(addr string) (net.Conn, error) {
	c, err := fasthttp.DialTimeout(addr, d.timeout)
	if err != nil {
		return nil, err
	}
	return newIdleTimeoutConn(c, d.timeout), nil
}

func newIdleTimeoutConn(c net.Conn, timeout time.Duration) *idleTimeoutConn {
	ic := &idleTimeoutConn{Conn: c, timeout: timeout}
	ic.stale.init(c)
	// Bound once per connection, so that moving a deadline allocates
	// nothing.
	ic.setRead, ic.setWrite = c.SetReadDeadline, c.SetWriteDeadline
	return ic
}

// idleTimeoutConn is an upstream connection with an idle read deadline
// that also checks, before a request is written on it again, that the
// upstream has not closed it (staleconn.go).
type idleTimeoutConn struct {
	net.Conn
	timeout time.Duration
	reused  bool // a response was read: the next write starts a new request
	stale   staleCheck
	// The read and write deadlines move lazily (deadline.go); setRead
	// and setWrite are the conn's own setters.
	read, write       lazyDeadline
	setRead, setWrite func(time.Time) error
}

// Read implements net.Conn: no silence of the upstream before it returns
// is cut before timeout, nor allowed much past it (deadline.go).
func (c *idleTimeoutConn) Read(p []byte) (int, error) {
	if err := c.read.extend(time.Now(), c.timeout, c.setRead); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.reused = true
	}
	return n, err
}

func (c *idleTimeoutConn) Write(p []byte) (int, error) {
	if c.reused {
		c.reused = false
		if c.stale.peerClosed() {
			return 0, errStaleConn
		}
	}
	return c.Conn.Write(p)
}
