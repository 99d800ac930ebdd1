package main

import "time"

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
}

type poolSnapshot struct {
	name  string // the pool's name
	eps   []endpoint
	spare []endpoint // the previous eps, reused by put
	at    time.Time
}

// get returns the pool's snapshot if it is fresh at now, else nil.
func (c *loadCache) get(pool string, now time.Time) *poolSnapshot {
	s := c.pools[pool]
	if s == nil || now.Sub(s.at) >= statsRefresh || now.Before(s.at) {
		return nil
	}
	return s
}

// put stores a snapshot taken at now and returns it.
func (c *loadCache) put(pool, name string, eps []endpoint, now time.Time) *poolSnapshot {
	if c.pools == nil {
		c.pools = make(map[string]*poolSnapshot)
	}
	s := c.pools[pool]
	if s == nil {
		if len(c.pools) >= maxCachedPools {
			clear(c.pools)
		}
		s = &poolSnapshot{}
		c.pools[pool] = s
	}
	// Pick counts outlive the snapshot (the endpoints are usually in
	// the same order: the search starts at the same index).
	next := append(s.spare[:0], eps...)
	for i := range next {
		for j := range s.eps {
			if o := s.eps[(i+j)%len(s.eps)]; o.addr == next[i].addr {
				next[i].picks = o.picks
				break
			}
		}
	}
	s.name, s.at = name, now
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
