//go:build wasip1

// Command ratelimit is a Proxy-Wasm plugin that limits requests and LLM
// tokens per minute per key (a tenant header, or the client IP) with token
// buckets kept in the host's shared data. See README.md.
package main

import (
	"errors"
	"strconv"

	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("ratelimit", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	cfg    *settings
	prefix string // shared-data key prefix: the plugin's name
	m      rateMetrics

	// Cluster scope (cluster.go). down and syncing belong to this
	// instance: down is refreshed from the shared flag at each tick.
	cm       clusterMetrics
	dirtyKey string // shared-data key of the list of keys to sync
	downKey  string // shared-data key of the Redis-down flag
	down     bool
	syncing  int // sync calls out
}

// rateMetrics are the plugin's counters (sluice_wasm_ratelimit_…{plugin}).
type rateMetrics struct {
	admitted        guest.Counter // requests admitted
	limitedRequests guest.Counter // 429s, by the bucket that refused
	limitedTokens   guest.Counter
	stateFailures   guest.Counter // shared data could not be read or written
	usageTokens     guest.Counter // LLM tokens settled from responses' usage
}

func defineMetrics() rateMetrics {
	return rateMetrics{
		admitted:        guest.NewCounter("ratelimit_admitted_total"),
		limitedRequests: guest.NewCounter("ratelimit_limited_total_type=requests"),
		limitedTokens:   guest.NewCounter("ratelimit_limited_total_type=tokens"),
		stateFailures:   guest.NewCounter("ratelimit_state_failures_total"),
		usageTokens:     guest.NewCounter("ratelimit_usage_tokens_total"),
	}
}

func (p *plugin) OnPluginStart(size int) bool {
	cfg, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.cfg = cfg
	p.prefix = guest.PluginName()
	p.m = defineMetrics()
	// Bound this plugin's shared state (buckets, cluster counts) on
	// Sluice: without it, keying by client IP on an open endpoint fills
	// the store, after which new keys cannot be written and are let
	// through (issue 16). Envoy has no such function: state lives as
	// before there.
	if err := sdk.SetSharedDataPolicy("ratelimit/"+p.prefix+"/", cfg.stateTTL, true); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		sdk.LogWarnf("ratelimit: bounding shared state: %v", err)
	}
	if cfg.cluster.on {
		if err := p.startCluster(); err != nil {
			sdk.LogErrorf("%v", err)
			return false
		}
	}
	return true
}

func (p *plugin) NewHttpContext(id uint32) sdk.HttpContext { return &stream{p: p, id: id} }

// stream is one request: its key and limits, what was charged, and the
// response's usage.
type stream struct {
	sdk.DefaultHttpContext
	p        *plugin
	id       uint32 // the HTTP context id (to resume after a Redis check)
	checking bool   // a sync: per_request check was sent
	win      int64  // cluster scope: the window that admitted the request
	key      string // shared-data key
	lim      limits
	admitted bool
	charged  int64
	dec      decision
	status   int // response status; 0 before the response
	usage    usageScanner
	hdrUsage int64 // usage from TGI's headers, when hdrFound
	hdrFound bool
}

func (s *stream) OnHttpRequestHeaders(_ int, eos bool) sdk.Action {
	hv, err := sdk.GetHttpRequestHeader(s.p.cfg.keyHeader)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return s.stateFailure("reading the key header", err)
	}
	var src string
	if hv == "" {
		addr, err := sdk.GetProperty([]string{"source", "address"})
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			src = "unknown" // one shared bucket for clients the host cannot name
		case err != nil:
			return s.stateFailure("reading source.address", err)
		default:
			src = string(addr)
		}
	}
	k := keyOf(hv, src)
	s.key = sharedKey(s.p.prefix, k)
	s.lim = s.p.cfg.limitsFor(k)
	if eos {
		return s.admit(0) // no body, no LLM tokens
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpRequestBody(size int, eos bool) sdk.Action {
	if s.key == "" || s.admitted {
		return sdk.ActionContinue
	}
	if !eos {
		return sdk.ActionPause // a streaming host buffers until the end
	}
	body, err := sdk.GetHttpRequestBody(0, size)
	if err != nil {
		return s.stateFailure("reading the request body", err)
	}
	return s.admit(requestCost(body, s.p.cfg))
}

// admit takes one request and cost tokens from the key's buckets with a
// compare-and-swap loop, or answers 429.
func (s *stream) admit(cost int64) sdk.Action {
	if s.lim.tpm == 0 {
		cost = 0
	}
	if s.p.cfg.cluster.on {
		return s.admitCluster(cost)
	}
	for range s.p.cfg.casRetries + 1 {
		b, cas, now, err := s.load()
		if err != nil {
			return s.stateFailure("reading the bucket", err)
		}
		nb, d := b.admit(now, s.lim, cost)
		if !d.allowed {
			return s.refuse(d)
		}
		err = sdk.SetSharedData(s.key, nb.encode(), cas)
		if errors.Is(err, sdk.ErrCasMismatch) {
			continue
		}
		if err != nil {
			return s.stateFailure("writing the bucket", err)
		}
		s.admitted, s.charged, s.dec = true, cost, d
		s.p.m.admitted.Inc(1)
		return sdk.ActionContinue
	}
	return s.stateFailure("updating the bucket", errors.New("too many compare-and-swap conflicts"))
}

// refuse counts a refusal and answers 429.
func (s *stream) refuse(d decision) sdk.Action {
	if d.by == "requests" {
		s.p.m.limitedRequests.Inc(1)
	} else {
		s.p.m.limitedTokens.Inc(1)
	}
	headers, body := rejection(s.lim, d)
	return guest.Reply(429, headers, body)
}

// load reads the key's bucket and the host's clock; a missing or
// unreadable value is a full bucket. For a missing key cas is the host's
// creation token, so two instances admitting the key's first requests at
// once cannot both create it (on a host without one it is 0: the set is
// unconditional and one of the two admissions may go uncounted).
func (s *stream) load() (bucket, uint32, int64, error) {
	t, err := sdk.GetCurrentTime()
	if err != nil {
		return bucket{}, 0, 0, err
	}
	now := t.UnixNano()
	val, cas, err := sdk.GetSharedData(s.key)
	if errors.Is(err, sdk.ErrNotFound) {
		return newBucket(now, s.lim), cas, now, nil
	}
	if err != nil {
		return bucket{}, 0, 0, err
	}
	b, ok := decodeBucket(val)
	if !ok {
		sdk.LogWarnf("ratelimit: shared value %q is not a bucket; starting it full", s.key)
		b = newBucket(now, s.lim)
	}
	return b, cas, now, nil
}

// stateFailure applies failure_mode_deny when the shared state or the
// request cannot be read.
func (s *stream) stateFailure(what string, err error) sdk.Action {
	s.p.m.stateFailures.Inc(1)
	if s.p.cfg.failureModeDeny {
		sdk.LogErrorf("ratelimit: %s failed, denying (failure_mode_deny): %v", what, err)
		return guest.Reply(503, [][2]string{{"content-type", "application/json"}},
			openai.ErrorBody("The rate limiter is unavailable.", "server_error", "", "rate_limiter_unavailable"))
	}
	sdk.LogWarnf("ratelimit: %s failed, letting the request through: %v", what, err)
	return sdk.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) sdk.Action {
	if !s.admitted {
		return sdk.ActionContinue
	}
	if v, err := sdk.GetHttpResponseHeader(":status"); err == nil {
		s.status, _ = strconv.Atoi(v)
	}
	for _, kv := range rateHeaders(s.lim, s.dec.st) {
		if err := sdk.SetHttpResponseHeader(kv[0], kv[1]); err != nil {
			sdk.LogWarnf("ratelimit: setting %s: %v", kv[0], err)
		}
	}
	if s.lim.tpm > 0 {
		ct, _ := sdk.GetHttpResponseHeader("content-type")
		s.usage.sse = isEventStream(ct)
		p, _ := sdk.GetHttpResponseHeader("x-prompt-tokens")
		g, _ := sdk.GetHttpResponseHeader("x-generated-tokens")
		s.hdrUsage, s.hdrFound = usageFromHeaders(p, g)
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpResponseBody(size int, eos bool) sdk.Action {
	if !s.admitted || s.lim.tpm == 0 || s.status < 200 || s.status > 299 {
		return sdk.ActionContinue
	}
	chunk, err := sdk.GetHttpResponseBody(0, size)
	if err != nil {
		sdk.LogWarnf("ratelimit: reading the response body: %v", err)
		return sdk.ActionContinue
	}
	s.usage.feed(chunk, eos)
	return sdk.ActionContinue
}

// OnHttpStreamDone settles the token charge: the real usage replaces the
// estimate; a request that got no successful response gets its tokens
// back; a successful one without usage (a stream without include_usage)
// keeps the estimate.
func (s *stream) OnHttpStreamDone() {
	if !s.admitted || s.lim.tpm == 0 {
		return
	}
	var delta int64
	switch {
	case s.usage.found:
		delta = s.usage.tokens - s.charged
		s.p.m.usageTokens.Inc(uint64(s.usage.tokens))
	case s.hdrFound:
		delta = s.hdrUsage - s.charged
		s.p.m.usageTokens.Inc(uint64(s.hdrUsage))
	case s.status < 200 || s.status > 299:
		delta = -s.charged
	}
	if delta == 0 {
		return
	}
	if s.p.cfg.cluster.on {
		s.settleCluster(delta)
		return
	}
	for range s.p.cfg.casRetries + 1 {
		b, cas, now, err := s.load()
		if err != nil {
			sdk.LogWarnf("ratelimit: settling %d tokens: %v", delta, err)
			return
		}
		err = sdk.SetSharedData(s.key, b.charge(now, s.lim, delta).encode(), cas)
		if errors.Is(err, sdk.ErrCasMismatch) {
			continue
		}
		if err != nil {
			sdk.LogWarnf("ratelimit: settling %d tokens: %v", delta, err)
		}
		return
	}
	sdk.LogWarnf("ratelimit: settling %d tokens: too many compare-and-swap conflicts", delta)
}

var (
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
