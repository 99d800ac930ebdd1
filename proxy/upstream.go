package proxy

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// pool is a configured upstream pool: equivalent endpoints that requests
// are balanced over.
type pool struct {
	name      string
	endpoints []*endpoint
	next      atomic.Uint64 // round-robin cursor
}

// endpoint is one upstream server and its keep-alive connection pool.
type endpoint struct {
	Endpoint
	hc       *fasthttp.HostClient
	inFlight atomic.Int64
}

// pools indexes the configured pools. It is built once and read-only.
type pools struct {
	list []*pool
	m    map[string]*pool
}

func newPools(cfg *Config) (*pools, error) {
	ps := &pools{m: make(map[string]*pool, len(cfg.Upstreams))}
	timeout := time.Duration(cfg.Timeout)
	for _, uc := range cfg.Upstreams {
		p := &pool{name: uc.Name}
		for _, raw := range uc.Endpoints {
			ep, err := ParseEndpoint(raw)
			if err != nil {
				return nil, err
			}
			p.endpoints = append(p.endpoints, &endpoint{Endpoint: ep, hc: newHostClient(ep, cfg, timeout)})
		}
		ps.list = append(ps.list, p)
		ps.m[p.name] = p
	}
	return ps, nil
}

func (ps *pools) byName(name string) *pool { return ps.m[name] }

func (ps *pools) closeIdle() {
	for _, p := range ps.list {
		for _, ep := range p.endpoints {
			ep.hc.CloseIdleConnections()
		}
	}
}

// pick returns the next endpoint in round-robin order.
func (p *pool) pick() *endpoint {
	n := p.next.Add(1)
	return p.endpoints[n%uint64(len(p.endpoints))]
}

func newHostClient(ep Endpoint, cfg *Config, timeout time.Duration) *fasthttp.HostClient {
	d := idleTimeoutDialer{timeout: timeout}
	return &fasthttp.HostClient{
		Addr:  ep.Addr,
		IsTLS: ep.TLS,
		Dial:  d.dial,
		// Enough connections for every slot: a request never waits for a
		// connection behind other requests.
		MaxConns:                 cfg.MaxConcurrentRequests + 16,
		MaxIdleConnDuration:      90 * time.Second,
		WriteTimeout:             timeout,
		StreamResponseBody:       true,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
	}
}

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
	return &idleTimeoutConn{Conn: c, timeout: d.timeout}, nil
}

type idleTimeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c *idleTimeoutConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}
