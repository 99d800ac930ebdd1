package main

import (
	"time"

	"github.com/sluice-proxy/sluice/plugins/internal/tiebreak"
)

// statsRefresh is how long an instance reuses a parsed
// sluice.upstream_stats snapshot. Parsing it costs a Go guest ~150 µs
// per request (measured: BenchmarkPluginCPU8KiB), more than the rest of
// the plugin together; the engines' queue depth is scraped every 50 ms
// by default anyway. Between snapshots the instance adds its own picks
// to the loads, so a burst does not all go to one stale minimum.
const statsRefresh = 10 * time.Millisecond

// maxCachedPools bounds the snapshots an instance keeps.
const maxCachedPools = 64

// loadCache holds an instance's recent snapshot of each pool's loads.
// Not safe for concurrent use (one per instance).
type loadCache struct {
	pools map[string]*poolSnapshot // by the pool asked for ("": the only one)
	// last is the snapshot get or put returned last, for lastAsked:
	// requests usually ask for the pool the previous one did, and a map
	// lookup by string costs a Go guest more than the comparison.
	last      *poolSnapshot
	lastAsked string
}

type poolSnapshot struct {
	name  string // the pool's name
	eps   []endpoint
	spare []endpoint // the previous eps, reused by put
	at    int64      // Unix nanoseconds
}

// get returns the pool's snapshot if it is fresh at now (Unix
// nanoseconds), else nil.
func (c *loadCache) get(pool string, now int64) *poolSnapshot {
	s := c.last
	if s == nil || c.lastAsked != pool {
		if s = c.pools[pool]; s == nil {
			return nil
		}
		c.last, c.lastAsked = s, pool
	}
	if now-s.at >= int64(statsRefresh) || now < s.at {
		return nil
	}
	return s
}

// put stores a snapshot taken at now (Unix nanoseconds) and returns it.
// It gives each endpoint its id (endpointID), carried over from the
// previous snapshot for an address it had.
func (c *loadCache) put(pool, name string, eps []endpoint, now int64) *poolSnapshot {
	if c.pools == nil {
		c.pools = make(map[string]*poolSnapshot)
	}
	s := c.pools[pool]
	if s == nil {
		if len(c.pools) >= maxCachedPools {
			clear(c.pools)
			c.last = nil
		}
		s = &poolSnapshot{}
		c.pools[pool] = s
	}
	// Pick counts outlive the snapshot (the endpoints are usually in
	// the same order: the search starts at the same index).
	next := append(s.spare[:0], eps...)
	for i := range next {
		next[i].id = 0
		for j := range s.eps {
			if o := s.eps[(i+j)%len(s.eps)]; o.addr == next[i].addr {
				next[i].picks, next[i].id = o.picks, o.id
				break
			}
		}
		if next[i].id == 0 {
			next[i].id = endpointID(next[i].addr)
		}
	}
	s.name, s.at = name, now
	c.last, c.lastAsked = s, pool
	s.spare, s.eps = s.eps, next
	return s
}

// maxPicks bounds the pick counts: when one reaches it, all are halved,
// so the counts follow the recent picks.
const maxPicks = 1 << 10

// picked adds one request to addr's load until the next snapshot, and
// to its pick count.
func (s *poolSnapshot) picked(addr string) {
	for i := range s.eps {
		if s.eps[i].addr == addr {
			s.eps[i].load++
			if s.eps[i].picks++; s.eps[i].picks >= maxPicks {
				for j := range s.eps {
					s.eps[j].picks /= 2
				}
			}
			return
		}
	}
}

// endpointID is an endpoint's id: a hash of its address, which the
// starts list records (index.loadStarts) and decide mixes with each
// request's random number to break ties. Computed once per address and
// snapshot (loadCache.put), not per request.
func endpointID(addr string) uint64 { return tiebreak.Mix(0, addr) }
