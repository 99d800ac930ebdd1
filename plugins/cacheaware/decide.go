package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
)

// reason is why an endpoint was chosen (the decisions metric's label).
type reason int

const (
	reasonPrefix    reason = iota // the longest recorded prefix
	reasonSession                 // the session's endpoint
	reasonLeastLoad               // no usable match: least load
	reasonOverload                // the preferred endpoint was overloaded
	numReasons
)

var reasonNames = [numReasons]string{"prefix", "session", "least_load", "overload"}

// endpoint is one healthy endpoint of the pool and its load.
type endpoint struct {
	addr string
	load float64 // requests in flight through the proxy + engine queue depth
}

// poolLoads reads the pool's healthy endpoints from the host's
// sluice.upstream_stats JSON (Exchange.AppendUpstreamsJSON). pool "" is
// the only pool of the snapshot. It returns the pool's name too.
func poolLoads(data []byte, pool string) (string, []endpoint, error) {
	ms, err := jsonscan.Object(data, "pools")
	if err != nil || !ms[0].Found() {
		return "", nil, errors.New(`cacheaware: sluice.upstream_stats: no "pools" object`)
	}
	pools := ms[0].Raw(data)
	var raw json.RawMessage
	if pool == "" {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(pools, &all); err != nil {
			return "", nil, fmt.Errorf("cacheaware: sluice.upstream_stats: %w", err)
		}
		if len(all) != 1 {
			return "", nil, nil
		}
		for name, r := range all {
			pool, raw = name, r
		}
	} else {
		pm, err := jsonscan.Object(pools, pool)
		if err != nil || !pm[0].Found() {
			return pool, nil, nil
		}
		raw = pm[0].Raw(pools)
	}
	var p struct {
		Endpoints map[string]struct {
			Healthy    bool    `json:"healthy"`
			InFlight   float64 `json:"in_flight"`
			QueueDepth float64 `json:"queue_depth"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return pool, nil, fmt.Errorf("cacheaware: sluice.upstream_stats: pool %q: %w", pool, err)
	}
	eps := make([]endpoint, 0, len(p.Endpoints))
	for addr, e := range p.Endpoints {
		if !e.Healthy || addr == "" || strings.ContainsAny(addr, ", ") {
			continue
		}
		eps = append(eps, endpoint{addr: addr, load: clean(e.InFlight) + clean(e.QueueDepth)})
	}
	return pool, eps, nil
}

func clean(v float64) float64 {
	if v > 0 && !math.IsInf(v, 1) {
		return v
	}
	return 0
}

// choice is the input of decide beyond the endpoints.
type choice struct {
	matched, total int    // prefix blocks matched, blocks in the prompt
	prefixOwner    string // endpoint of the matched prefix
	sessionOwner   string // endpoint of the session ("": none)
	rnd            uint64 // breaks ties between equally loaded endpoints
}

// decide orders the endpoints: the chosen one first, then the others by
// load. The preference is the session's endpoint, else the prefix's
// when at least cacheThreshold of the prompt matched; it is kept unless
// it is overloaded (as in SGLang's router: more than absThreshold above
// the least-loaded endpoint and more than relThreshold times its load),
// in which case, or without a preference, the least-loaded endpoint
// wins. eps is reordered in place.
func (s *settings) decide(eps []endpoint, c choice) reason {
	sort.Slice(eps, func(i, j int) bool {
		if eps[i].load != eps[j].load {
			return eps[i].load < eps[j].load
		}
		ti, tj := mix(c.rnd, eps[i].addr), mix(c.rnd, eps[j].addr)
		if ti != tj {
			return ti < tj
		}
		return eps[i].addr < eps[j].addr
	})
	pref, why := "", reasonLeastLoad
	switch {
	case c.sessionOwner != "":
		pref, why = c.sessionOwner, reasonSession
	case c.prefixOwner != "" && c.total > 0 && float64(c.matched) >= s.cacheThreshold*float64(c.total):
		pref, why = c.prefixOwner, reasonPrefix
	}
	if pref == "" {
		return reasonLeastLoad
	}
	i := 0
	for i < len(eps) && eps[i].addr != pref {
		i++
	}
	if i == len(eps) { // gone or unhealthy
		return reasonLeastLoad
	}
	least := eps[0].load
	if l := eps[i].load; l-least > s.absThreshold && l > least*s.relThreshold {
		return reasonOverload
	}
	chosen := eps[i]
	copy(eps[1:i+1], eps[:i])
	eps[0] = chosen
	return why
}

// endpointList renders the first maxEndpoints endpoints as a
// sluice.endpoint value ("a:1,b:2").
func (s *settings) endpointList(dst []byte, eps []endpoint) []byte {
	for i := 0; i < len(eps) && i < s.maxEndpoints; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, eps[i].addr...)
	}
	return dst
}

// mix hashes rnd and addr (FNV-1a) into a tie-breaking key.
func mix(rnd uint64, addr string) uint64 {
	h := uint64(14695981039346656037) ^ rnd
	for i := 0; i < len(addr); i++ {
		h ^= uint64(addr[i])
		h *= 1099511628211
	}
	return h
}
