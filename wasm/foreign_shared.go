package wasm

import (
	"encoding/binary"
	"time"
)

// Foreign functions on the plugin's shared data (a Sluice extension; the
// v0.2.1 ABI can neither delete a key nor bound the store). They act on
// the calling plugin and its vm_id's store, in any context.
var pluginForeignFuncs = map[string]func(p *Plugin, args, dst []byte) ([]byte, status){
	"sluice.shared_data_delete": foreignSharedDataDelete,
	"sluice.shared_data_policy": foreignSharedDataPolicy,
}

// maxPolicyTTLMillis caps sluice.shared_data_policy's time to live (a
// u32 of milliseconds, about 49 days, can hold it).
const maxPolicyTTLMillis = 30 * 24 * 3600 * 1000

// parseSharedDeleteArgs splits sluice.shared_data_delete's arguments: a
// u32 little-endian cas (0: unconditional) then the key (the rest, may be
// empty). key is a view into args.
func parseSharedDeleteArgs(args []byte) (cas uint32, key []byte, ok bool) {
	if len(args) < 4 {
		return 0, nil, false
	}
	return binary.LittleEndian.Uint32(args), args[4:], true
}

// foreignSharedDataDelete removes a key from the plugin's shared data:
// OK, NOT_FOUND (no such key, or it expired or was evicted),
// CAS_MISMATCH (a non-zero cas that is not the key's current one) or
// BAD_ARGUMENT (fewer than 4 bytes of arguments). The result is empty.
func foreignSharedDataDelete(p *Plugin, args, dst []byte) ([]byte, status) {
	cas, key, ok := parseSharedDeleteArgs(args)
	if !ok {
		return nil, statusBadArgument
	}
	if st := p.shared.del(key, cas); st != statusOK {
		return nil, st
	}
	return dst, statusOK
}

// parseSharedPolicyArgs decodes sluice.shared_data_policy's arguments: a
// u32 little-endian time to live in milliseconds (0: none; at most 30
// days), a u32 little-endian flags word (bit 0: evict the oldest
// evictable entries when the store is full; other bits must be 0), then
// the key prefix the rule covers (the rest, at most 256 bytes; empty:
// every key).
func parseSharedPolicyArgs(args []byte) (prefix []byte, pol sharedPolicy, ok bool) {
	if len(args) < 8 || len(args)-8 > maxSharedPrefixBytes {
		return nil, sharedPolicy{}, false
	}
	ttl := binary.LittleEndian.Uint32(args)
	flags := binary.LittleEndian.Uint32(args[4:])
	if ttl > maxPolicyTTLMillis || flags&^1 != 0 {
		return nil, sharedPolicy{}, false
	}
	return args[8:], sharedPolicy{ttl: time.Duration(ttl) * time.Millisecond, evict: flags&1 != 0}, true
}

// foreignSharedDataPolicy sets the policy of the plugin's later writes of
// keys with a prefix (replacing an earlier rule for the same prefix); the
// operator's shared_data.prefixes still win. BAD_ARGUMENT for malformed
// arguments or a 17th prefix. The result is empty.
func foreignSharedDataPolicy(p *Plugin, args, dst []byte) ([]byte, status) {
	prefix, pol, ok := parseSharedPolicyArgs(args)
	if !ok {
		return nil, statusBadArgument
	}
	if st := p.sharedRules.setGuest(string(prefix), pol); st != statusOK {
		return nil, st
	}
	return dst, statusOK
}
