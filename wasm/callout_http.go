package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
)

// DefaultMaxCalloutResponse caps the body of a callout response that
// HTTPCallouts reads (HTTPCalloutsConfig.MaxResponseBytes 0).
const DefaultMaxCalloutResponse = 1 << 20

// ErrCalloutResponseTooLarge is returned by HTTPCallouts.Do when the
// response body exceeds the configured cap; the plugin sees a failed call.
var ErrCalloutResponseTooLarge = errors.New("wasm: callout response body too large")

// HTTPCalloutsConfig configures NewHTTPCallouts. The zero value is usable.
type HTTPCalloutsConfig struct {
	// MaxResponseBytes caps a response body; a larger one fails the call.
	// Default DefaultMaxCalloutResponse (1 MiB).
	MaxResponseBytes int64
	// MaxIdleConnsPerHost is the idle keep-alive connections kept per
	// endpoint. Default 16.
	MaxIdleConnsPerHost int
}

// HTTPCallouts is the Callouts the Host builds from HostConfig.Upstreams:
// it sends each call with net/http to one endpoint of the named pool,
// chosen round-robin, with the call's :authority as Host (the endpoint's
// host:port when :authority is empty), verifying https endpoints as the
// pool's tls says (proxy.UpstreamTLSConfig). It follows no
// redirects, asks for no compression, ignores proxy environment variables,
// and reads at most MaxResponseBytes of body. It does not share the
// proxy's load balancing, health checks or per-endpoint caps. It is safe
// for concurrent use; Close releases idle connections.
type HTTPCallouts struct {
	pools   map[string]*calloutPool
	client  *http.Client
	tr      *http.Transport
	poolTrs []*http.Transport // of the pools that set tls
	maxBody int64
}

type calloutPool struct {
	endpoints []*url.URL
	next      atomic.Uint32
	client    *http.Client // the pool's own when it sets tls; else the shared one
}

// NewHTTPCallouts returns a Callouts over the endpoints of upstreams, the
// pools as config.Config.Resolve returns them: each endpoint already
// parsed by the proxy's rules (config.ParseEndpoint), so a pool the proxy
// accepts is one the callouts accept, and no other, and no URL is parsed
// twice. A call goes to an endpoint's Addr over its scheme, with the
// call's :path; endpoint weights are not used (round-robin). It refuses a
// pool without a name or endpoints, a name given twice and an endpoint
// without an address (upstreams not built by Resolve). upstreams is read,
// not retained.
func NewHTTPCallouts(upstreams []config.Upstream, cfg HTTPCalloutsConfig) (*HTTPCallouts, error) {
	c := &HTTPCallouts{pools: make(map[string]*calloutPool, len(upstreams)), maxBody: cfg.MaxResponseBytes}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxCalloutResponse
	}
	idle := cfg.MaxIdleConnsPerHost
	if idle <= 0 {
		idle = 16
	}
	for _, u := range upstreams {
		if u.Name == "" {
			return nil, errors.New("wasm: callouts: an upstream pool has no name")
		}
		if _, dup := c.pools[u.Name]; dup {
			return nil, fmt.Errorf("wasm: callouts: upstream pool %q is defined twice", u.Name)
		}
		if len(u.Endpoints) == 0 {
			return nil, fmt.Errorf("wasm: callouts: upstream pool %q has no endpoints", u.Name)
		}
		p := &calloutPool{}
		for i, ep := range u.Endpoints {
			if ep.Addr == "" {
				return nil, fmt.Errorf("wasm: callouts: upstream pool %q: endpoint %d (%q) has no address; pass the pools config.Config.Resolve returns", u.Name, i, ep.URL)
			}
			p.endpoints = append(p.endpoints, &url.URL{Scheme: ep.Scheme(), Host: ep.Addr})
		}
		c.pools[u.Name] = p
	}
	c.tr = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	c.client = c.newClient(c.tr)
	for _, u := range upstreams {
		p := c.pools[u.Name]
		p.client = c.client
		if u.TLS == nil {
			continue
		}
		// The pool's tls (ca_file, server_name, insecure_skip_verify)
		// applies to its callouts as to proxied requests.
		tr := c.tr.Clone()
		tr.TLSClientConfig = u.TLS.Clone()
		c.poolTrs = append(c.poolTrs, tr)
		p.client = c.newClient(tr)
	}
	return c, nil
}

// newClient returns a client on tr that follows no redirects.
func (c *HTTPCallouts) newClient(tr *http.Transport) *http.Client {
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// HasPool reports whether pool is one of the configured upstream pools.
func (c *HTTPCallouts) HasPool(pool string) bool {
	_, ok := c.pools[pool]
	return ok
}

// hopHeaders are not forwarded from a plugin's call (net/http manages
// them).
var hopHeaders = [...]string{"connection", "keep-alive", "proxy-connection", "transfer-encoding",
	"upgrade", "te", "trailer", "host", "content-length"}

func isHopHeader(k []byte) bool {
	for _, h := range hopHeaders {
		if string(k) == h {
			return true
		}
	}
	return false
}

// Do sends req to the next endpoint of pool.
func (c *HTTPCallouts) Do(ctx context.Context, pool string, req *CalloutRequest) (*CalloutResponse, error) {
	p := c.pools[pool]
	if p == nil {
		return nil, fmt.Errorf("wasm: callouts: unknown upstream pool %q", pool)
	}
	ep := p.endpoints[(p.next.Add(1)-1)%uint32(len(p.endpoints))]
	var body io.Reader = http.NoBody
	if len(req.Body) > 0 {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, ep.Scheme+"://"+ep.Host+req.Path, body)
	if err != nil {
		return nil, fmt.Errorf("wasm: callouts: %w", err)
	}
	hr.Host = req.Authority
	if hr.Host == "" {
		// An empty ":authority" (Envoy accepts one): the endpoint's own
		// host, as a client of that endpoint would send.
		hr.Host = ep.Host
	}
	for i := 0; i < req.Header.Len(); i++ {
		k, v := req.Header.At(i)
		if isHopHeader(k) {
			continue
		}
		hr.Header.Add(string(k), string(v))
	}
	if req.Trailer.Len() > 0 {
		// Trailers need a chunked body: an unknown length and a body
		// reader even when it is empty.
		hr.Trailer = make(http.Header, req.Trailer.Len())
		for i := 0; i < req.Trailer.Len(); i++ {
			k, v := req.Trailer.At(i)
			hr.Trailer.Add(string(k), string(v))
		}
		hr.ContentLength = -1
		hr.Body = io.NopCloser(bytes.NewReader(req.Body))
	}
	resp, err := p.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > c.maxBody {
		return nil, fmt.Errorf("%w: over %d bytes from pool %q", ErrCalloutResponseTooLarge, c.maxBody, pool)
	}
	out := &CalloutResponse{
		StatusCode: resp.StatusCode,
		Reason:     strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))),
		Body:       data,
	}
	addHTTPHeader(&out.Header, resp.Header)
	addHTTPHeader(&out.Trailer, resp.Trailer)
	return out, nil
}

// addHTTPHeader adds every field of src to dst (names lower-cased, in
// name order, so that plugins see a stable order).
func addHTTPHeader(dst *proxy.Headers, src http.Header) {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range src[k] {
			dst.AddString(k, v)
		}
	}
}

// Close closes idle connections.
func (c *HTTPCallouts) Close() {
	c.tr.CloseIdleConnections()
	for _, tr := range c.poolTrs {
		tr.CloseIdleConnections()
	}
}

var _ Callouts = (*HTTPCallouts)(nil)
