package wasm

// claim is a check-and-set over n keys as one step: key(i) gives the i-th
// key (it may reuse one buffer: each is copied before the next is asked
// for) and pol its policy. When a live entry under one of them holds a
// value other than value, claim appends that value (the first such, in
// key order) to dst and returns it with that key's index, writing
// nothing. Otherwise it writes value under every key, as set with cas 0
// would, and returns dst and -1; a write the store refuses ends it with
// that status, the writes before it made. No other access to the store
// comes between the reads and the writes, so of instances claiming keys
// they share, the first writes and every later one learns its value.
func (d *sharedData) claim(dst []byte, n int, key func(i int) []byte, value []byte, pol func(key []byte) sharedPolicy) ([]byte, int, status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expire(now)
	for i := 0; i < n; i++ {
		if v := d.m[string(key(i))]; v != nil && string(v.value) != string(value) {
			return append(dst, v.value...), i, statusOK
		}
	}
	for i := 0; i < n; i++ {
		k := key(i)
		if st := d.setLocked(k, value, 0, pol(k), now); st != statusOK {
			return dst, -1, st
		}
	}
	return dst, -1, statusOK
}
