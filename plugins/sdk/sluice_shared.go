package sdk

import (
	"encoding/binary"
	"time"
)

// Sluice extensions to shared data (foreign functions; a host without
// them answers ErrNotFound, so a plugin can fall back to plain
// Proxy-Wasm behaviour).

// maxSharedDataPolicyTTL is the longest TTL sluice.shared_data_policy takes.
const maxSharedDataPolicyTTL = 30 * 24 * time.Hour

// sharedDataDeleteArgs encodes sluice.shared_data_delete's arguments:
// u32 little-endian cas, then the key.
func sharedDataDeleteArgs(key string, cas uint32) []byte {
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(key)), cas)
	return append(b, key...)
}

// sharedDataPolicyArgs encodes sluice.shared_data_policy's arguments:
// u32 little-endian TTL in milliseconds, u32 little-endian flags (bit 0:
// evict oldest), then the prefix. ttl is rounded up to a millisecond.
func sharedDataPolicyArgs(prefix string, ttl time.Duration, evictOldest bool) ([]byte, error) {
	if ttl < 0 || ttl > maxSharedDataPolicyTTL {
		return nil, &policyArgError{"ttl " + ttl.String() + " is outside 0..720h"}
	}
	if len(prefix) > 256 {
		return nil, &policyArgError{"prefix of " + utoa(uint64(len(prefix))) + " bytes is over 256"}
	}
	ms := uint32((ttl + time.Millisecond - 1) / time.Millisecond)
	var flags uint32
	if evictOldest {
		flags = 1
	}
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, 8+len(prefix)), ms)
	b = binary.LittleEndian.AppendUint32(b, flags)
	return append(b, prefix...), nil
}

type policyArgError struct{ msg string }

func (e *policyArgError) Error() string { return "sdk: SetSharedDataPolicy: " + e.msg }
func (e *policyArgError) Unwrap() error { return ErrBadArgument }
