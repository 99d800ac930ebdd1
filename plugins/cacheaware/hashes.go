//go:build wasip1

package main

import (
	"encoding/binary"
	"errors"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// promptHashesFunc is Sluice's foreign function that hashes the request
// body's prompt on the host (wasm/foreign_prompt.go): the guest neither
// copies the body nor hashes it, which was most of its CPU per request.
const promptHashesFunc = "sluice.prompt_block_hashes"

// promptHashArgs encodes the function's arguments: u32 little-endian
// chunk size, then u32 little-endian bytes to hash at most.
func promptHashArgs(chunk, maxPrompt int) [8]byte {
	var a [8]byte
	binary.LittleEndian.PutUint32(a[:], uint32(chunk))
	binary.LittleEndian.PutUint32(a[4:], uint32(maxPrompt))
	return a
}

// promptHashes sets p.hashes to the prompt's block hashes and returns
// the hash seed and, when wantUser, the raw "user" field. It asks the
// host (sluice.prompt_block_hashes) unless the user field is wanted, the
// host already failed to read this body (unread) or the host lacks the
// function (Envoy: NOT_FOUND, remembered); when the
// host cannot read the body (PARSE_FAILURE: it does not open the usual
// way) or does not have the function, the plugin reads and hashes the
// body itself, with the same rendering and hash (internal/prompthash),
// and counts it in …_guest_hashed_total. ok is false for a request that
// is not a completion request.
func (p *plugin) promptHashes(size int, wantUser, unread bool) (seed uint64, user []byte, ok bool) {
	if !wantUser && !unread && !p.noHostHashes {
		res, err := sdk.CallForeignFunction(promptHashesFunc, p.hashArgs[:])
		switch {
		case err == nil && len(res) >= 8 && len(res)%8 == 0:
			seed = binary.LittleEndian.Uint64(res)
			p.hashBuf = res // given back when the request is routed
			p.hashes = leHashes(p.hashes, res[8:])
			return seed, nil, true
		case err == nil:
			sdk.LogWarnf("cacheaware: %s returned %d bytes, not 8 per hash; hashing in the plugin", promptHashesFunc, len(res))
			p.noHostHashes = true
		case errors.Is(err, sdk.ErrNotFound):
			sdk.LogInfof("cacheaware: the host has no %s; the plugin reads and hashes each prompt itself", promptHashesFunc)
			p.noHostHashes = true
		case !errors.Is(err, sdk.ErrParseFailure):
			sdk.LogWarnf("cacheaware: %s: %v; hashing in the plugin", promptHashesFunc, err)
		}
	}
	body, err := sdk.GetHttpRequestBody(0, size)
	if err != nil {
		sdk.LogWarnf("cacheaware: cannot read the request body: %v", err)
		return 0, nil, false
	}
	req, ok := parseRequest(body, wantUser)
	if !ok {
		return 0, nil, false // not a completion request
	}
	p.m.pending.counts[countGuestHashed]++
	p.hashes = blockHashes(p.hashes[:0], req.seed, req.text, p.s.chunk, p.s.maxPrompt)
	return req.seed, req.user, true
}
