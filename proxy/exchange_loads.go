package proxy

import (
	"encoding/binary"
	"math"

	"github.com/sluice-proxy/sluice/proxy/upstream"
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
	return ex.appendPoolLoads(dst, pool, LoadQueueDepth+1, false)
}

// Fields of AppendEndpointLoads' endpoints, in order.
const (
	LoadInFlight     = iota // requests in flight through the proxy
	LoadQueueDepth          // the engine's scraped queue depth (0: not scraped)
	LoadKVCacheUsage        // the engine's scraped KV-cache usage, 0–1 (0: not scraped)
	NumLoadFields
)

// AppendEndpointLoads is AppendPoolLoads with a field count after the
// pool's name and NumLoadFields figures per endpoint, in the order of the
// Load constants (sluice.endpoint_loads):
//
//	u32 name length, the pool's name
//	u32 F, the number of f64 fields per endpoint
//	per endpoint in rotation: u32 address length, the address, F × f64
//
// A reader takes the fields it knows and skips the rest, so a later
// version may append fields.
func (ex *Exchange) AppendEndpointLoads(dst, pool []byte) []byte {
	return ex.appendPoolLoads(dst, pool, NumLoadFields, true)
}

// appendPoolLoads appends the first fields Load figures of each endpoint
// of the pool, after the field count when counted.
func (ex *Exchange) appendPoolLoads(dst, pool []byte, fields int, counted bool) []byte {
	var p *upstream.Pool
	if ps := ex.pools; ps != nil {
		p = ps.ByName(string(pool))
		if len(pool) == 0 {
			if list := ps.List(); len(list) == 1 {
				p = list[0]
			}
		}
	}
	if p == nil {
		dst = appendLenPrefixed(dst, pool)
	} else {
		dst = appendLenPrefixed(dst, p.Name())
	}
	if counted {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(fields))
	}
	if p == nil {
		return dst
	}
	for _, ep := range p.Endpoints() {
		if !ep.Up() {
			continue
		}
		dst = appendLenPrefixed(dst, ep.Addr)
		for f := range fields {
			var v float64
			switch f {
			case LoadInFlight:
				v = float64(ep.InFlight())
			case LoadQueueDepth:
				v = ep.QueueDepth()
			case LoadKVCacheUsage:
				v = ep.KVCacheUsage()
			}
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				v = 0
			}
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	}
	return dst
}

// appendLenPrefixed appends b's u32 little-endian length, then b.
func appendLenPrefixed[T string | []byte](dst []byte, b T) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
