package config

import "strconv"

// PluginSharedData bounds what a plugin writes to its vm_id's Proxy-Wasm
// shared data, a Sluice extension (Envoy keeps shared data forever and
// never refuses a write). The zero value keeps today's behaviour: no
// time to live, and a full store (16384 keys or 64 MiB per vm_id)
// refuses new keys with INTERNAL_FAILURE. The rules apply to the writes
// this plugin makes: an entry takes the policy of its last writer.
type PluginSharedData struct {
	// TTL is how long an entry lives after its last write; it then reads
	// as NOT_FOUND. Default 0: forever.
	TTL Duration `yaml:"ttl"`
	// EvictOldest lets a write that finds the store full drop the
	// entries written longest ago under an evicting policy (never other
	// entries), instead of failing. Default false.
	EvictOldest bool `yaml:"evict_oldest"`
	// Prefixes override TTL and EvictOldest for keys that start with a
	// prefix (the longest matching prefix wins). They also override the
	// rules the plugin sets itself with sluice.shared_data_policy.
	Prefixes []PluginSharedDataPrefix `yaml:"prefixes"`
}

// PluginSharedDataPrefix is the policy of the keys that start with Prefix.
type PluginSharedDataPrefix struct {
	// Prefix is the key prefix (required, not empty, unique).
	Prefix      string   `yaml:"prefix"`
	TTL         Duration `yaml:"ttl"`
	EvictOldest bool     `yaml:"evict_oldest"`
}

// Validate checks durations (not negative) and prefixes (not empty, not
// repeated). Fields are relative to the plugin ("shared_data.ttl").
func (s PluginSharedData) Validate() error {
	if s.TTL < 0 {
		return fieldErr("shared_data.ttl", "must not be negative, got %s", s.TTL)
	}
	prefixes := newNameSet("prefix", len(s.Prefixes))
	for i, p := range s.Prefixes {
		f := "shared_data.prefixes[" + strconv.Itoa(i) + "]"
		if err := prefixes.add(f+".prefix", p.Prefix); err != nil {
			return err
		}
		if err := notNegative(f+".ttl", p.TTL); err != nil {
			return err
		}
	}
	return nil
}
