package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"github.com/sluice-proxy/sluice/plugins/internal/tiebreak"
	"github.com/sluice-proxy/sluice/plugins/internal/upstreams"
)

// Config is the plugin configuration (JSON); every field is optional:
//
//	{"pool": "vllm",
//	 "weights": {"queue_depth": 1, "in_flight": 1, "kv_cache_usage": 10},
//	 "max_endpoints": 3}
type Config struct {
	// Pool is the upstream pool to pick in when no earlier plugin chose
	// one (sluice.upstream). Default "": the pool chosen earlier, or the
	// only pool when there is exactly one.
	Pool string `json:"pool"`
	// Weights of the score; the endpoint with the lowest score wins.
	Weights Weights `json:"weights"`
	// MaxEndpoints is how many endpoints, best first, go into
	// sluice.endpoint: the proxy tries the next one when the first is at
	// its cap or fails before responding. 1–16, default 3.
	MaxEndpoints int `json:"max_endpoints"`
}

// Weights of score = queue_depth·w_q + in_flight·w_i + kv_cache_usage·w_kv.
// An omitted weight takes its default; weights are 0–1000000.
type Weights struct {
	// QueueDepth weighs requests waiting in the engine's queue (scraped
	// from its metrics). Default 1.
	QueueDepth *float64 `json:"queue_depth"`
	// InFlight weighs requests the proxy has outstanding at the endpoint.
	// Default 1.
	InFlight *float64 `json:"in_flight"`
	// KVCacheUsage weighs the engine's KV-cache use, a fraction 0–1.
	// Default 10: a full cache counts like ten waiting requests, since
	// the engine must preempt or queue new work.
	KVCacheUsage *float64 `json:"kv_cache_usage"`
}

// Defaults applied by parseConfig.
const (
	DefaultQueueWeight    = 1.0
	DefaultInFlightWeight = 1.0
	DefaultKVWeight       = 10.0
	DefaultMaxEndpoints   = 3
	maxEndpointsLimit     = 16
	maxWeightValue        = 1_000_000
)

// picker is a validated configuration.
type picker struct {
	pool         string
	wq, wi, wkv  float64
	maxEndpoints int
}

// parseConfig decodes and validates a configuration; empty data is the
// default configuration. Errors name the field at fault.
func parseConfig(data []byte) (*picker, error) {
	var cfg Config
	if err := config.DecodeOptional("queuepicker", data, &cfg); err != nil {
		return nil, err
	}
	p := &picker{pool: cfg.Pool, wq: DefaultQueueWeight, wi: DefaultInFlightWeight, wkv: DefaultKVWeight, maxEndpoints: DefaultMaxEndpoints}
	for _, w := range []struct {
		name string
		in   *float64
		out  *float64
	}{{"queue_depth", cfg.Weights.QueueDepth, &p.wq}, {"in_flight", cfg.Weights.InFlight, &p.wi}, {"kv_cache_usage", cfg.Weights.KVCacheUsage, &p.wkv}} {
		if w.in == nil {
			continue
		}
		if !(*w.in >= 0 && *w.in <= maxWeightValue) {
			return nil, fmt.Errorf("queuepicker: weights.%s: %v is not in 0..%d", w.name, *w.in, maxWeightValue)
		}
		*w.out = *w.in
	}
	switch {
	case cfg.MaxEndpoints < 0 || cfg.MaxEndpoints > maxEndpointsLimit:
		return nil, fmt.Errorf("queuepicker: max_endpoints: %d is not in 1..%d", cfg.MaxEndpoints, maxEndpointsLimit)
	case cfg.MaxEndpoints > 0:
		p.maxEndpoints = cfg.MaxEndpoints
	}
	if strings.ContainsAny(cfg.Pool, "\x00\r\n") {
		return nil, fmt.Errorf("queuepicker: pool: %q has control bytes", cfg.Pool)
	}
	return p, nil
}

// poolFor resolves the pool to pick in: the one chosen earlier, else the
// configured one, else the only pool of the snapshot. "" when it cannot
// tell.
func (p *picker) poolFor(chosen string, s *upstreams.Snapshot) string {
	switch {
	case chosen != "":
		return chosen
	case p.pool != "":
		return p.pool
	case len(s.Pools) == 1:
		for name := range s.Pools {
			return name
		}
	}
	return ""
}

// score is the endpoint's load; lower is better. Negative or non-finite
// inputs (which a host should not send) count as 0.
func (p *picker) score(e upstreams.Load) float64 {
	return p.wq*clean(e.QueueDepth) + p.wi*clean(e.InFlight) + p.wkv*clean(e.KVCacheUsage)
}

func clean(v float64) float64 {
	if v > 0 && !math.IsInf(v, 1) {
		return v
	}
	return 0
}

// candidate is an endpoint being ranked.
type candidate struct {
	addr  string
	score float64
	tie   uint64
}

// byRank orders candidates by score, then by tie-break, then by address.
func byRank(a, b candidate) int {
	switch {
	case a.score != b.score:
		return cmp.Compare(a.score, b.score)
	case a.tie != b.tie:
		return cmp.Compare(a.tie, b.tie)
	}
	return strings.Compare(a.addr, b.addr)
}

// appendPick appends to dst up to maxEndpoints of the endpoints eps (those
// in rotation), lowest score first, as a sluice.endpoint list
// ("a:1,b:2"); nothing when there is none. rnd breaks ties, so equally
// loaded endpoints share the traffic. cands is scratch space, returned
// for the next call, so that a pick allocates nothing.
func (p *picker) appendPick(dst []byte, eps []upstreams.Load, rnd uint64, cands []candidate) ([]byte, []candidate) {
	cands = cands[:0]
	for _, e := range eps {
		if e.Addr == "" || strings.ContainsAny(e.Addr, ", ") {
			continue
		}
		cands = append(cands, candidate{addr: e.Addr, score: p.score(e), tie: tiebreak.Mix(rnd, e.Addr)})
	}
	slices.SortFunc(cands, byRank)
	for i := 0; i < len(cands) && i < p.maxEndpoints; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, cands[i].addr...)
	}
	return dst, cands
}

// pick is appendPick for the healthy endpoints of pool in a
// sluice.upstreams snapshot, as a string; "" when the pool is unknown or
// has no healthy endpoint.
func (p *picker) pick(s *upstreams.Snapshot, pool string, rnd uint64) string {
	list, _ := p.appendPick(nil, s.Loads(nil, pool), rnd, nil)
	return string(list)
}
