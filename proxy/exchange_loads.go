package proxy

import (
	"encoding/binary"
	"math"
)

// AppendPoolLoads appends to dst the loads of one pool in a binary form
// that a guest reads in a few microseconds, where the JSON of
// AppendUpstreamsJSON costs a Go guest ~30 µs to parse
// (sluice.upstream_loads). pool names the pool; empty means the only
// pool, and then, when there are several, the name is empty and no
// endpoint follows. The form, every integer little-endian:
//
//	u32 name length, the pool's name (as asked when no such pool: no endpoints follow)
//	per endpoint in rotation, in configuration order:
//	  u32 address length, the address ("host:port"),
//	  f64 requests in flight through the proxy, f64 the engine's scraped queue depth
//
// Values are read one by one, so a snapshot under load is approximate.
// It allocates only when dst must grow.
func (ex *Exchange) AppendPoolLoads(dst, pool []byte) []byte {
	ps := ex.pools
	if ps == nil {
		return appendLenPrefixed(dst, pool)
	}
	p := ps.ByName(string(pool))
	if len(pool) == 0 {
		if list := ps.List(); len(list) == 1 {
			p = list[0]
		}
	}
	if p == nil {
		return appendLenPrefixed(dst, pool)
	}
	dst = appendLenPrefixed(dst, p.Name())
	for _, ep := range p.Endpoints() {
		if !ep.Up() {
			continue
		}
		dst = appendLenPrefixed(dst, ep.Addr)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(float64(ep.InFlight())))
		q := ep.QueueDepth()
		if math.IsNaN(q) || math.IsInf(q, 0) || q < 0 {
			q = 0
		}
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(q))
	}
	return dst
}

// appendLenPrefixed appends b's u32 little-endian length, then b.
func appendLenPrefixed[T string | []byte](dst []byte, b T) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
