package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/sluice-proxy/sluice/internal/prompthash"
	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
)

// reason is why an endpoint was chosen (the decisions metric's label).
type reason int

const (
	reasonPrefix    reason = iota // the longest recorded prefix
	reasonSession                 // the session's endpoint
	reasonLeastLoad               // no usable match: a new prefix (fewest started, then least load)
	reasonOverload                // the preferred endpoint was overloaded
	numReasons
)

var reasonNames = [numReasons]string{"prefix", "session", "least_load", "overload"}

// endpoint is one healthy endpoint of the pool and its load.
type endpoint struct {
	addr   string
	load   float64 // requests in flight through the proxy + engine queue depth
	picks  uint32  // this instance's recent picks of it (poolSnapshot.picked)
	starts float32 // prefixes started on it, decayed (index.loadStarts; 0 unless loaded)
	tie    uint64  // decide's tie-breaking key for this request
	id     uint64  // endpointID(addr), set by loadCache.put; 0: not yet
}

// key returns the endpoint's id, computing it if put did not.
func (e *endpoint) key() uint64 {
	if e.id == 0 {
		e.id = endpointID(e.addr)
	}
	return e.id
}

// poolLoads reads the pool's healthy endpoints from the host's
// sluice.upstream_stats JSON (Exchange.AppendUpstreamsJSON), appending
// them to dst. pool "" is the only pool of the snapshot; the pool's name
// is returned ("" when it cannot tell). It scans the JSON in place
// (jsonscan): encoding/json's reflection cost a Go guest ~0.5 ms here.
// fast reports that the JSON was in the host's exact shape, read in one
// pass (fastPoolLoads); else the validating scanner read it.
func poolLoads(dst []endpoint, data []byte, pool string) (name string, out []endpoint, fast bool, err error) {
	if name, out, ok := fastPoolLoads(dst, data, pool); ok {
		return name, out, true, nil
	}
	name, out, err = scanPoolLoads(dst, data, pool)
	return name, out, false, err
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
		dst = append(dst, endpoint{addr: string(key), load: number(em[1].Raw(value)) + number(em[2].Raw(value))})
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
	rnd            uint64 // breaks ties between equally loaded endpoints
}

// decide orders the endpoints: the chosen one first, then the others by
// load. The preference is the session's endpoint, else the prefix's
// when at least cacheThreshold of the prompt matched; it is kept unless
// it is overloaded (as in SGLang's router: more than absThreshold above
// the least-loaded endpoint and more than relThreshold times its load),
// in which case (or when it is gone) the least-loaded endpoint wins.
// Without a preference the request starts a prefix: fewestStarts picks.
// eps is reordered in place.
func (s *settings) decide(eps []endpoint, c choice) reason {
	// Insertion sort: pools are small, and sort.Slice's reflection costs
	// a Go guest ~10 µs. The tie-breaking keys are mixed once each, not
	// once per comparison, from the request's random number and the
	// endpoint's id (its address hashed once per snapshot).
	for i := range eps {
		eps[i].tie = tieKey(c.rnd, eps[i].key())
	}
	for i := 1; i < len(eps); i++ {
		for j := i; j > 0 && less(&eps[j], &eps[j-1]); j-- {
			eps[j], eps[j-1] = eps[j-1], eps[j]
		}
	}
	pref, why := "", reasonLeastLoad
	switch {
	case c.sessionOwner != "":
		pref, why = c.sessionOwner, reasonSession
	case s.prefers(c):
		pref, why = c.prefixOwner, reasonPrefix
	}
	if pref == "" {
		s.fewestStarts(eps)
		return reasonLeastLoad
	}
	i := 0
	for i < len(eps) && eps[i].addr != pref {
		i++
	}
	if i == len(eps) { // gone or unhealthy
		return reasonLeastLoad
	}
	if s.overloaded(eps[i].load, eps[0].load) {
		return reasonOverload
	}
	chosen := eps[i]
	copy(eps[1:i+1], eps[:i])
	eps[0] = chosen
	return why
}

// tieKey mixes a request's random number with an endpoint's id
// (SplitMix64's finaliser): for one rnd the keys of different endpoints
// are in an order unrelated to their addresses, and it changes with rnd.
func tieKey(rnd, id uint64) uint64 {
	z := rnd ^ id
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// overloaded reports whether an endpoint with load l is overloaded next
// to the least-loaded one's load least, by SGLang's rule: more than
// absThreshold above it and more than relThreshold times it.
func (s *settings) overloaded(l, least float64) bool {
	return l-least > s.absThreshold && l > least*s.relThreshold
}

// prefers reports whether c has a preference decide keeps unless it is
// overloaded: the session's endpoint, or the prefix's when at least
// cacheThreshold of the prompt matched.
func (s *settings) prefers(c choice) bool {
	return c.sessionOwner != "" || c.prefixOwner != "" && c.total > 0 && float64(c.matched) >= s.cacheThreshold*float64(c.total)
}

// follow moves the endpoint addr to the front of eps and reports true
// when it is there and not overloaded next to the least-loaded endpoint,
// decide's rule for a preferred endpoint. It is for a request that
// started a prefix another instance started too, since this request's
// match (a lost claim): had the other's record come first, decide would
// have preferred its endpoint. eps is otherwise left in its order.
func (s *settings) follow(eps []endpoint, addr string) bool {
	i, least := -1, math.Inf(1)
	for j := range eps {
		least = min(least, eps[j].load)
		if eps[j].addr == addr {
			i = j
		}
	}
	if i < 0 || s.overloaded(eps[i].load, least) {
		return false
	}
	chosen := eps[i]
	copy(eps[1:i+1], eps[:i])
	eps[0] = chosen
	return true
}

// fewestStarts moves to the front, among the endpoints not overloaded
// next to the least-loaded one (eps[0]), the one with the fewest prefixes
// started on it (endpoint.starts), keeping the load order among equals: a
// request that starts a prefix (a new conversation, a new system prompt)
// goes where the fewest prefixes live, as SGLang's router sends an
// unmatched request to the worker with the smallest cache tree, rather
// than to the momentarily least-loaded endpoint, which can gather two or
// three hot prefixes on one engine whose bursts then spill
// (benchmarks/RESULTS.md).
func (s *settings) fewestStarts(eps []endpoint) {
	if len(eps) == 0 {
		return
	}
	best := 0
	for i := 1; i < len(eps); i++ {
		if s.overloaded(eps[i].load, eps[0].load) {
			continue
		}
		if eps[i].starts < eps[best].starts {
			best = i
		}
	}
	chosen := eps[best]
	copy(eps[1:best+1], eps[:best])
	eps[0] = chosen
}

// minMatch is the shortest match, in blocks, that lets the prefix of a
// prompt of n blocks decide: the least m with m ≥ cacheThreshold·n (the
// test decide applies), and at least 1 (prompthash.MinMatch). The index
// neither records nor looks up shorter prefixes: they could only ever
// lose to the load.
func (s *settings) minMatch(n int) int { return prompthash.MinMatch(n, s.cacheThreshold) }

// less orders endpoints by load, then by the instance's recent picks
// (so that, when loads tie, as they do at low rates where every engine
// is idle, new prefixes go round the endpoints instead of piling up at
// random: with random ties 16 prefix groups on 8 engines put up to
// twice the fair share on one), then by the tie-breaking key (a hash of
// the request's random number and the address), then by address.
func less(a, b *endpoint) bool {
	if a.load != b.load {
		return a.load < b.load
	}
	if a.picks != b.picks {
		return a.picks < b.picks
	}
	if a.tie != b.tie {
		return a.tie < b.tie
	}
	return a.addr < b.addr
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
