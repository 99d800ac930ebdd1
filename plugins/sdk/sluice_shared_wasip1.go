//go:build wasip1

package sdk

import "time"

// DeleteSharedData removes key from the shared data (Sluice's
// sluice.shared_data_delete). A non-zero cas must equal the key's current
// token (else ErrCasMismatch); a missing key matches ErrNotFound. On a
// host without the function the error matches ErrNotFound too: check
// with GetSharedData, or fall back to overwriting the value.
func DeleteSharedData(key string, cas uint32) error {
	_, err := CallForeignFunction("sluice.shared_data_delete", sharedDataDeleteArgs(key, cas))
	return err
}

// SetSharedDataPolicy bounds this plugin's later writes of keys that
// start with prefix ("" for every key) on Sluice (sluice.shared_data_policy):
// they expire ttl after their last write (0: never; at most 720h, rounded
// up to a millisecond), and, with evictOldest, a write to a full store
// drops the oldest such entries instead of failing. The operator's
// shared_data.prefixes win over it. Call it from OnPluginStart; on a host
// without the function the error matches ErrNotFound and data lives as
// on Envoy.
func SetSharedDataPolicy(prefix string, ttl time.Duration, evictOldest bool) error {
	args, err := sharedDataPolicyArgs(prefix, ttl, evictOldest)
	if err != nil {
		return err
	}
	_, err = CallForeignFunction("sluice.shared_data_policy", args)
	return err
}
