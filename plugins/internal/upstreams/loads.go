package upstreams

import (
	"encoding/binary"
	"math"
)

// LoadsFunc is Sluice's foreign function that returns one pool's
// endpoints in rotation with their loads, in binary (DecodeLoads reads
// it): the argument is the pool's name, "" for the only pool.
const LoadsFunc = "sluice.endpoint_loads"

// Load is one endpoint of a sluice.endpoint_loads answer. A figure the
// host does not report is 0.
type Load struct {
	Addr         string // "host:port"
	InFlight     float64
	QueueDepth   float64
	KVCacheUsage float64
}

// DecodeLoads reads a sluice.endpoint_loads answer:
//
//	u32 name length, the pool's name (empty: several pools and none named)
//	u32 F, the number of f64 fields per endpoint
//	per endpoint: u32 address length, the address, F × f64
//
// every integer and float little-endian; the fields are requests in
// flight, queue depth and KV-cache usage, in that order, and any after
// them are skipped. It returns the pool's name (a view into b) and the
// endpoints, written over dst: an endpoint whose address is the one dst
// held at its position keeps that string, so a guest that reads the
// same pool on every request allocates nothing for it. ok is false for
// a malformed answer (then out is dst[:0]).
func DecodeLoads(dst []Load, b []byte) (pool []byte, out []Load, ok bool) {
	pool, b, ok = CutField(b)
	if !ok || len(b) < 4 {
		return nil, dst[:0], false
	}
	fields := uint64(binary.LittleEndian.Uint32(b))
	b = b[4:]
	n := 0
	for len(b) > 0 {
		var addr []byte
		if addr, b, ok = CutField(b); !ok || uint64(len(b)) < 8*fields {
			return nil, dst[:0], false
		}
		var f [3]float64
		for i := range min(fields, uint64(len(f))) {
			f[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		b = b[8*fields:]
		l := Load{InFlight: f[0], QueueDepth: f[1], KVCacheUsage: f[2]}
		if n < len(dst) && dst[n].Addr == string(addr) {
			l.Addr = dst[n].Addr
		} else {
			l.Addr = string(addr)
		}
		if n < len(dst) {
			dst[n] = l
		} else {
			dst = append(dst, l)
		}
		n++
	}
	return pool, dst[:n], true
}

// CutField splits a u32 little-endian length and that many bytes off b:
// a name or an address in Sluice's binary answers (sluice.upstream_loads,
// sluice.endpoint_loads). ok is false when b is too short for either.
func CutField(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, b, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, b, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// Loads returns the endpoints of pool in the snapshot that are in
// rotation, written over dst as DecodeLoads does (in no particular
// order): the same input for a picker as a sluice.endpoint_loads answer.
func (s *Snapshot) Loads(dst []Load, pool string) []Load {
	dst = dst[:0]
	for addr, e := range s.Pools[pool].Endpoints {
		if e.Healthy {
			dst = append(dst, Load{Addr: addr, InFlight: e.InFlight, QueueDepth: e.QueueDepth, KVCacheUsage: e.KVCacheUsage})
		}
	}
	return dst
}
