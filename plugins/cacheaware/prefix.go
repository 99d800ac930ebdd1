//go:build wasip1

package main

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// Sluice's foreign functions that keep the index's prefix keys on the
// host (wasm/foreign_prefix.go): one call hashes the prompt and looks
// its checkpoints up, another records the chosen endpoint at them. The
// keys are the index's own ("ca/<pool>/b" and the hash), so requests the
// plugin indexes itself (a body the host does not read, the "user" field
// wanted) and those the host indexes see one index. On a host without
// them (Envoy) the plugin hashes with sluice.prompt_block_hashes or
// itself and reads and writes the keys one by one. Each key read or
// written through the ABI costs a Go guest about a microsecond: a new
// 8 KiB prompt made ~10 such calls (benchmarks/RESULTS.md).
const (
	prefixMatchFunc  = "sluice.prompt_prefix_match"
	prefixRecordFunc = "sluice.prompt_prefix_record"
	prefixClaimFunc  = "sluice.prompt_prefix_claim"
)

// prefixAnswer is the host's answer to sluice.prompt_prefix_match for a
// request, as index.matchIn gives it: the hash seed, the prompt's blocks
// (total), the shortest match recorded or looked up (min), the blocks
// matched and the endpoint they went to (the longest match whose
// endpoint is in the pool, else the longest).
type prefixAnswer struct {
	seed                uint64
	total, min, matched int
	owner               string
}

// hostMatch asks the host for the longest recorded prefix of the
// request's prompt in pool, whose endpoints are eps. ok is false when
// the plugin must index the request itself: the host lacks the
// functions (remembered) or cannot read the body (it does not open the
// usual way: unread, which tells the plugin not to ask the host for its
// hashes either). guessed reports that the request's pool, which the
// host names, is the one p.lastPool named; when it is not, p.lastPool is
// set to the request's and the caller matches again in its pool.
func (p *plugin) hostMatch(pool string, eps []endpoint) (m prefixAnswer, ok, unread, guessed bool) {
	if p.prefixPool != pool || p.prefixArgs == nil {
		a := append(p.prefixArgs[:0], p.hashArgs[:]...)
		a = binary.LittleEndian.AppendUint64(a, math.Float64bits(p.s.cacheThreshold))
		a = append(a, keyPrefix...)
		a = append(a, pool...)
		p.prefixArgs = append(a, '/', 'b')
		p.prefixPool = pool
	}
	res, err := sdk.CallForeignFunction(prefixMatchFunc, p.prefixArgs)
	switch {
	case err == nil:
	case errors.Is(err, sdk.ErrNotFound):
		sdk.LogInfof("cacheaware: the host has no %s; the plugin reads and writes the index's keys itself", prefixMatchFunc)
		p.noHostPrefix = true
		return m, false, false, false
	case errors.Is(err, sdk.ErrParseFailure):
		return m, false, true, false
	default:
		sdk.LogWarnf("cacheaware: %s: %v; indexing this request in the plugin", prefixMatchFunc, err)
		return m, false, false, false
	}
	defer sdk.ReleaseBytes(res)
	if len(res) < 20 || uint64(len(res)-20) < uint64(binary.LittleEndian.Uint32(res[16:])) {
		sdk.LogWarnf("cacheaware: %s returned %d malformed bytes; the plugin indexes requests itself", prefixMatchFunc, len(res))
		p.noHostPrefix = true
		return m, false, false, false
	}
	m.seed = binary.LittleEndian.Uint64(res)
	m.total, m.min = int(binary.LittleEndian.Uint32(res[8:])), int(binary.LittleEndian.Uint32(res[12:]))
	upstream := res[20 : 20+binary.LittleEndian.Uint32(res[16:])]
	if string(upstream) != p.lastPool {
		p.setLastPool(upstream)
		return m, true, false, false
	}
	for rest := res[20+len(upstream):]; len(rest) >= 8; {
		blocks, size := int(binary.LittleEndian.Uint32(rest)), int(binary.LittleEndian.Uint32(rest[4:]))
		if size > len(rest)-8 {
			break
		}
		addr, in := addrIn(eps, rest[8:8+size])
		rest = rest[8+size:]
		switch {
		case addr == "":
		case in:
			m.matched, m.owner = blocks, addr
			return m, true, false, true
		case m.owner == "":
			m.matched, m.owner = blocks, addr
		}
	}
	return m, true, false, true
}

// hostRecord records the chosen endpoint at the checkpoints of the
// request's prompt past from (the length of a match already recorded for
// it), after hostMatch; a refused write (the store full) is counted. A
// host that has the match but not the record (NOT_FOUND) leaves the
// index to the plugin from the next request on.
func (p *plugin) hostRecord(endpoint string, from int) {
	a := binary.LittleEndian.AppendUint32(p.recordArgs[:0], uint32(from))
	p.recordArgs = append(a, endpoint...)
	_, err := sdk.CallForeignFunction(prefixRecordFunc, p.recordArgs)
	if err == nil {
		return
	}
	p.m.pending.counts[countWriteFailures]++
	if errors.Is(err, sdk.ErrNotFound) {
		sdk.LogInfof("cacheaware: the host has no %s; the plugin reads and writes the index's keys itself", prefixRecordFunc)
		p.noHostPrefix = true
	}
}

// claimResult is what hostClaim did with a new prefix.
type claimResult int

const (
	claimUnsupported claimResult = iota // not made: record it instead
	claimMade                           // recorded for the endpoint
	claimLost                           // another endpoint got there first
)

// hostClaim records endpoint at the checkpoints of the request's prompt
// (after hostMatch) for a request that starts a prefix, unless another
// instance recorded another endpoint there since the match
// (sluice.prompt_prefix_claim): then it writes nothing and returns
// claimLost, with that endpoint's address when it is among eps ("" when
// it left the pool) and the blocks of the checkpoint it holds. A host
// without the function (remembered) or an error gives claimUnsupported,
// and the caller records as before; a refused write (the store full) is
// counted, as hostRecord counts it.
func (p *plugin) hostClaim(endpoint string, eps []endpoint) (r claimResult, owner string, blocks int) {
	if p.noHostClaim {
		return claimUnsupported, "", 0
	}
	p.recordArgs = append(p.recordArgs[:0], endpoint...)
	res, err := sdk.CallForeignFunction(prefixClaimFunc, p.recordArgs)
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		sdk.LogInfof("cacheaware: the host has no %s; two instances may start one prefix on two endpoints", prefixClaimFunc)
		p.noHostClaim = true
		return claimUnsupported, "", 0
	case err != nil:
		p.m.pending.counts[countWriteFailures]++
		return claimUnsupported, "", 0
	case len(res) == 0:
		return claimMade, "", 0
	}
	defer sdk.ReleaseBytes(res)
	if len(res) < 5 {
		sdk.LogWarnf("cacheaware: %s returned %d malformed bytes; recording instead", prefixClaimFunc, len(res))
		p.noHostClaim = true
		return claimUnsupported, "", 0
	}
	if addr, in := addrIn(eps, res[4:]); in {
		owner = addr
	}
	return claimLost, owner, int(binary.LittleEndian.Uint32(res))
}
