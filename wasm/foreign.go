package wasm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// Foreign functions: proxy_call_foreign_function(name, args, ret_results)
// runs a host function from a fixed registry (the table is in doc.go).
// Each writes its result into dst (host memory, reused by the instance)
// and returns it; args is a view into guest memory, valid until the result
// is copied into the guest.

// foreignFunc computes a foreign function's result for the effective
// context s (nil: the root context). It must not keep args or dst.
type foreignFunc func(s *stream, args, dst []byte) ([]byte, status)

// maxRandomBytes caps sluice.random_bytes.
const maxRandomBytes = 4096

var foreignFuncs = map[string]foreignFunc{
	"sluice.upstream_stats": foreignUpstreamStats,
	"sluice.upstream_loads": foreignUpstreamLoads,
	"sluice.endpoint_loads": foreignEndpointLoads,
	"sluice.now_unix_nano":  foreignNowUnixNano,
	"sluice.sha256":         foreignSHA256,
	"sluice.random_bytes":   foreignRandomBytes,
	// In foreign_prompt.go.
	"sluice.prompt_block_hashes": foreignPromptBlockHashes,
	// In foreign_prefix.go.
	"sluice.prompt_prefix_match":  foreignPromptPrefixMatch,
	"sluice.prompt_prefix_record": foreignPromptPrefixRecord,
	"sluice.prompt_prefix_claim":  foreignPromptPrefixClaim,
}

// foreignUpstreamStats returns the proxy's JSON snapshot of the upstream
// pools (Exchange.AppendUpstreamsJSON): the same value as the property
// sluice.upstreams. It needs an HTTP context (BAD_ARGUMENT in the root
// context) and takes no arguments.
func foreignUpstreamStats(s *stream, args, dst []byte) ([]byte, status) {
	if s == nil || len(args) != 0 {
		return nil, statusBadArgument
	}
	return s.ex.AppendUpstreamsJSON(dst), statusOK
}

// maxPoolNameArg bounds the argument of sluice.upstream_loads and
// sluice.endpoint_loads.
const maxPoolNameArg = 1024

// foreignUpstreamLoads returns one pool's loads in binary
// (Exchange.AppendPoolLoads): its name, then each endpoint in rotation
// with its requests in flight and scraped queue depth. The argument names
// the pool (empty: the only one; at most 1 KiB). It needs an HTTP context
// (BAD_ARGUMENT in the root context). A Go guest reads it in a few
// microseconds, where sluice.upstream_stats' JSON costs it ~30.
func foreignUpstreamLoads(s *stream, args, dst []byte) ([]byte, status) {
	if s == nil || len(args) > maxPoolNameArg {
		return nil, statusBadArgument
	}
	return s.ex.AppendPoolLoads(dst, args), statusOK
}

// foreignEndpointLoads is foreignUpstreamLoads with a field count and
// each endpoint's scraped KV-cache usage (Exchange.AppendEndpointLoads),
// for pickers that weigh more than the queues (queuepicker). Same
// argument and context.
func foreignEndpointLoads(s *stream, args, dst []byte) ([]byte, status) {
	if s == nil || len(args) > maxPoolNameArg {
		return nil, statusBadArgument
	}
	return s.ex.AppendEndpointLoads(dst, args), statusOK
}

// foreignNowUnixNano returns the wall clock as 8 bytes little-endian Unix
// nanoseconds. It takes no arguments.
func foreignNowUnixNano(_ *stream, args, dst []byte) ([]byte, status) {
	if len(args) != 0 {
		return nil, statusBadArgument
	}
	return binary.LittleEndian.AppendUint64(dst, uint64(time.Now().UnixNano())), statusOK
}

// foreignSHA256 returns the 32-byte SHA-256 digest of its arguments.
func foreignSHA256(_ *stream, args, dst []byte) ([]byte, status) {
	sum := sha256.Sum256(args)
	return append(dst, sum[:]...), statusOK
}

// foreignRandomBytes returns n cryptographically random bytes, n given as
// a 4-byte little-endian argument (1 to 4096).
func foreignRandomBytes(_ *stream, args, dst []byte) ([]byte, status) {
	if len(args) != 4 {
		return nil, statusBadArgument
	}
	n := binary.LittleEndian.Uint32(args)
	if n == 0 || n > maxRandomBytes {
		return nil, statusBadArgument
	}
	dst = append(dst, make([]byte, n)...)
	if _, err := rand.Read(dst[len(dst)-int(n):]); err != nil {
		return nil, statusInternalFailure
	}
	return dst, statusOK
}

func hostCallForeignFunction(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	name, args := a.bytes(0), a.bytes(2)
	retPtr, retSize := a.retPair(4)
	if a.refused() {
		return
	}
	in := a.in
	var res []byte
	var st status
	// No allocation: the map lookups convert name in place.
	if h := in.p.host.hidden; h != nil && h[string(name)] {
		stack[0] = uint64(statusNotFound)
		return
	}
	if fn := foreignFuncs[string(name)]; fn != nil {
		res, st = fn(in.eff, args, in.scratch[:0])
	} else if pfn := pluginForeignFuncs[string(name)]; pfn != nil {
		res, st = pfn(in.p, args, in.scratch[:0])
	} else if string(name) == "sluice.skip_callbacks" {
		res, st = foreignSkipCallbacks(in, args, in.scratch[:0]) // foreign_callbacks.go
	} else {
		stack[0] = uint64(statusNotFound)
		return
	}
	if st == statusOK {
		st = in.returnBytes(ctx, mod, res, retPtr, retSize)
	}
	if res != nil && cap(res) <= maxScratchKeep {
		in.scratch = res[:0]
	}
	stack[0] = uint64(st)
}
