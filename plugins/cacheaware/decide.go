package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
)

// reason is why an endpoint was chosen (the decisions metric's label).
type reason int

const (
	reasonPrefix    reason = iota // the longest recorded prefix
	reasonSession                 // the session's endpoint
	reasonLeastLoad               // no usable match: least queue, as least_queue
	reasonOverload                // the preferred endpoint was overloaded: least queue
	numReasons
)

var reasonNames = [numReasons]string{"prefix", "session", "least_load", "overload"}

// endpoint is one healthy endpoint of the pool and its load.
type endpoint struct {
	addr  string
	load  float64 // requests in flight through the proxy + engine queue depth
	queue float64 // the engine queue depth alone (its last scrape)
	turn  uint32  // set by decide: its place from the rotating offset
}

// poolLoads reads the pool's healthy endpoints from the host's
// sluice.upstream_stats JSON (Exchange.AppendUpstreamsJSON), appending
// them to dst. pool "" is the only pool of the snapshot; the pool's name
// is returned ("" when it cannot tell). It scans the JSON in place
// (jsonscan): encoding/json's reflection cost a Go guest ~0.5 ms here.
func poolLoads(dst []endpoint, data []byte, pool string) (string, []endpoint, error) {
	if name, out, ok := fastPoolLoads(dst, data, pool); ok {
		return name, out, nil
	}
	return scanPoolLoads(dst, data, pool)
}

// scanPoolLoads is poolLoads for any valid JSON: the host's shape with
// members reordered, escapes, space.
func scanPoolLoads(dst []endpoint, data []byte, pool string) (string, []endpoint, error) {
	ms, err := jsonscan.Object(data, "pools")
	if err != nil || !ms[0].Found() {
		return "", dst, errors.New(`cacheaware: sluice.upstream_stats: no "pools" object`)
	}
	pools := ms[0].Raw(data)
	var raw []byte
	guess, n := pool == "", 0
	err = jsonscan.Members(pools, func(key []byte, escaped bool, value []byte) bool {
		n++
		switch {
		case guess && n == 1 && !escaped:
			pool, raw = string(key), value
		case guess:
			pool, raw = "", nil // several pools: cannot tell
			return false
		case !escaped && string(key) == pool:
			raw = value
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return "", dst, fmt.Errorf("cacheaware: sluice.upstream_stats: %w", err)
	case raw == nil:
		return pool, dst, nil
	}
	pm, err := jsonscan.Object(raw, "endpoints")
	if err != nil {
		return pool, dst, fmt.Errorf("cacheaware: sluice.upstream_stats: pool %q: %w", pool, err)
	}
	if !pm[0].Found() {
		return pool, dst, nil
	}
	err = jsonscan.Members(pm[0].Raw(raw), func(key []byte, escaped bool, value []byte) bool {
		if escaped || len(key) == 0 || bytes.ContainsAny(key, ", ") {
			return true
		}
		em, err := jsonscan.Object(value, "healthy", "in_flight", "queue_depth")
		if err != nil || string(em[0].Raw(value)) != "true" {
			return true
		}
		q := number(em[2].Raw(value))
		dst = append(dst, endpoint{addr: string(key), load: number(em[1].Raw(value)) + q, queue: q})
		return true
	})
	if err != nil {
		return pool, dst, fmt.Errorf("cacheaware: sluice.upstream_stats: pool %q: %w", pool, err)
	}
	return pool, dst, nil
}

// number decodes a JSON number; anything else, negative or not finite,
// counts as 0.
func number(raw []byte) float64 {
	if len(raw) == 0 || raw[0] == '"' {
		return 0
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0
	}
	return clean(v)
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
	offset         uint64 // the rotating offset: breaks ties as least_queue does
}

// decide orders the endpoints: the chosen one first, then the others as
// least_queue would pick them. The preference is the session's endpoint,
// else the prefix's when at least cacheThreshold of the prompt matched;
// it is kept unless it is overloaded (as in SGLang's router: its load,
// in flight + queue depth, more than absThreshold above the least-loaded
// endpoint's and more than relThreshold times it). Without a preference
// (a prompt nothing else shares), or when it is overloaded, the choice is
// least_queue's (proxy/upstream/lb.go): the shortest engine queue, then
// the fewest requests in flight, ties to the first from c.offset in the
// pool's order, so that on a workload with nothing to reuse the plugin
// routes as least_queue does. eps, in the pool's order, is reordered in
// place.
func (s *settings) decide(eps []endpoint, c choice) reason {
	n := len(eps)
	if n == 0 {
		return reasonLeastLoad
	}
	least, off := eps[0].load, int(c.offset%uint64(n))
	for i := range eps {
		eps[i].turn = uint32((i - off + n) % n)
		least = min(least, eps[i].load)
	}
	// Insertion sort: pools are small, and sort.Slice's reflection costs
	// a Go guest ~10 µs.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && lessQueued(eps[j], eps[j-1]); j-- {
			eps[j], eps[j-1] = eps[j-1], eps[j]
		}
	}
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
	for i < n && eps[i].addr != pref {
		i++
	}
	if i == n { // gone or unhealthy
		return reasonLeastLoad
	}
	if l := eps[i].load; l-least > s.absThreshold && l > least*s.relThreshold {
		return reasonOverload
	}
	chosen := eps[i]
	copy(eps[1:i+1], eps[:i])
	eps[0] = chosen
	return why
}

// lessQueued is least_queue's order (proxy/upstream/lb.go's lessQueued
// and pickBest): by engine queue depth, then by requests in flight
// (with equal queues, load orders as in-flight does), then by place
// from the rotating offset. Where least_queue's offset moves with every
// pick of the pool, the plugin's moves with every choice it makes that
// way (poolSnapshot.turn), so ties go round the endpoints: at low rates,
// where every engine is idle, new prefixes spread instead of piling up
// (with random ties 16 prefix groups on 8 engines put up to twice the
// fair share on one).
func lessQueued(a, b endpoint) bool {
	if a.queue != b.queue {
		return a.queue < b.queue
	}
	if a.load != b.load {
		return a.load < b.load
	}
	return a.turn < b.turn
}

// minMatch is the shortest match, in blocks, that lets the prefix of a
// prompt of n blocks decide: the least m with m ≥ cacheThreshold·n (the
// test decide applies), and at least 1. The index neither records nor
// looks up shorter prefixes: they could only ever lose to the load.
func (s *settings) minMatch(n int) int {
	return max(1, int(math.Ceil(s.cacheThreshold*float64(n))))
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
