package proxy

// Headers is an ordered multimap of HTTP header fields as filters see them:
// names lower-cased (as HTTP/2 and Envoy present them), pseudo-headers
// (":method", ":path", ":authority", ":scheme" on requests, ":status" on
// responses) first.
//
// A Headers reuses its storage across Reset, so a pooled Headers costs no
// allocation per request once warm. Slices returned by its methods are
// views into that storage: valid until the next mutation or Reset.
// A Headers is not safe for concurrent use.
type Headers struct {
	kvs   []headerField
	n     int
	dirty bool
}

type headerField struct {
	key, value []byte
}

// Len returns the number of fields.
func (h *Headers) Len() int { return h.n }

// At returns the i-th field. It panics if i is out of range.
func (h *Headers) At(i int) (key, value []byte) {
	if i >= h.n {
		panic("proxy: Headers.At index out of range")
	}
	f := &h.kvs[i]
	return f.key, f.value
}

// Reset removes every field, keeping the storage, and clears Modified.
func (h *Headers) Reset() { h.n, h.dirty = 0, false }

// Modified reports whether Add, Set or Del changed h since the last Reset
// or ClearModified.
func (h *Headers) Modified() bool { return h.dirty }

// ClearModified resets the flag Modified reports.
func (h *Headers) ClearModified() { h.dirty = false }

// Get returns the first value of key (compared case-insensitively).
func (h *Headers) Get(key []byte) ([]byte, bool) { return get(h, key) }

// GetString is Get for a string key.
func (h *Headers) GetString(key string) ([]byte, bool) { return get(h, key) }

func get[K []byte | string](h *Headers, key K) ([]byte, bool) {
	if i := index(h, key, 0); i >= 0 {
		return h.kvs[i].value, true
	}
	return nil, false
}

// Add appends a field. key is lower-cased; key and value are copied.
func (h *Headers) Add(key, value []byte) { add(h, key, value) }

// AddString is Add for string arguments.
func (h *Headers) AddString(key, value string) { add(h, key, value) }

func add[K []byte | string](h *Headers, key, value K) {
	if h.n == len(h.kvs) {
		h.kvs = append(h.kvs, headerField{})
	}
	f := &h.kvs[h.n]
	f.key = appendLower(f.key[:0], key)
	f.value = append(f.value[:0], value...)
	h.n++
	h.dirty = true
}

// Set replaces the first field named key with value and removes the others;
// with no such field it appends one. Pseudo-headers keep their position.
func (h *Headers) Set(key, value []byte) {
	i := index(h, key, 0)
	if i < 0 {
		h.Add(key, value)
		return
	}
	h.kvs[i].value = append(h.kvs[i].value[:0], value...)
	h.dirty = true
	delFrom(h, key, i+1)
}

// Del removes every field named key.
func (h *Headers) Del(key []byte) { delFrom(h, key, 0) }

// DelString is Del for a string key.
func (h *Headers) DelString(key string) { delFrom(h, key, 0) }

// CopyFrom makes h a copy of src.
func (h *Headers) CopyFrom(src *Headers) {
	h.Reset()
	for i := 0; i < src.n; i++ {
		h.Add(src.kvs[i].key, src.kvs[i].value)
	}
}

// index returns the position of the first field named key at from or
// after, or -1.
func index[K []byte | string](h *Headers, key K, from int) int {
	for i := from; i < h.n; i++ {
		if equalFold(h.kvs[i].key, key) {
			return i
		}
	}
	return -1
}

// delFrom removes fields named key at index from and after, keeping order
// and the removed fields' storage for reuse.
func delFrom[K []byte | string](h *Headers, key K, from int) {
	j := from
	for i := from; i < h.n; i++ {
		if equalFold(h.kvs[i].key, key) {
			continue
		}
		if i != j {
			h.kvs[i], h.kvs[j] = h.kvs[j], h.kvs[i]
		}
		j++
	}
	if j != h.n {
		h.n, h.dirty = j, true
	}
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// appendLower appends src to dst, ASCII letters lower-cased.
func appendLower[K []byte | string](dst []byte, src K) []byte {
	for i := 0; i < len(src); i++ {
		dst = append(dst, lowerASCII(src[i]))
	}
	return dst
}

// equalFold compares a and b ignoring ASCII case.
func equalFold[K []byte | string](a []byte, b K) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}
