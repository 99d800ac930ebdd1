package wasm

import (
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// Limits of the rules a guest sets with sluice.shared_data_policy.
const (
	maxGuestSharedRules  = 16
	maxSharedPrefixBytes = 256
)

// sharedRules is one plugin's policy for the shared-data writes it makes:
// the operator's (PluginConfig.SharedData, fixed at load) and the
// guest's (sluice.shared_data_policy, copy-on-write). It is safe for
// concurrent use.
type sharedRules struct {
	def      sharedPolicy // operator default
	operator []prefixRule // operator prefixes: win over the guest's
	guest    atomic.Pointer[[]prefixRule]
}

type prefixRule struct {
	prefix string
	pol    sharedPolicy
}

func newSharedRules(c proxy.PluginSharedData) *sharedRules {
	r := &sharedRules{def: sharedPolicy{ttl: time.Duration(c.TTL), evict: c.EvictOldest}}
	for _, p := range c.Prefixes {
		r.operator = append(r.operator, prefixRule{p.Prefix, sharedPolicy{ttl: time.Duration(p.TTL), evict: p.EvictOldest}})
	}
	return r
}

// policyFor returns the policy of a write of key: the operator's longest
// matching prefix, else the guest's, else the operator's default.
func (r *sharedRules) policyFor(key []byte) sharedPolicy {
	if pol, ok := longestPrefix(r.operator, key); ok {
		return pol
	}
	if g := r.guest.Load(); g != nil {
		if pol, ok := longestPrefix(*g, key); ok {
			return pol
		}
	}
	return r.def
}

func longestPrefix(rules []prefixRule, key []byte) (sharedPolicy, bool) {
	best := -1
	for i := range rules {
		p := rules[i].prefix
		if len(p) <= len(key) && string(key[:len(p)]) == p && (best < 0 || len(p) > len(rules[best].prefix)) {
			best = i
		}
	}
	if best < 0 {
		return sharedPolicy{}, false
	}
	return rules[best].pol, true
}

// setGuest adds or replaces the guest's rule for prefix. It fails with
// BAD_ARGUMENT when the guest already has maxGuestSharedRules others.
func (r *sharedRules) setGuest(prefix string, pol sharedPolicy) status {
	for {
		old := r.guest.Load()
		var cur []prefixRule
		if old != nil {
			cur = *old
		}
		next := make([]prefixRule, 0, len(cur)+1)
		replaced := false
		for _, rule := range cur {
			if rule.prefix == prefix {
				rule.pol, replaced = pol, true
			}
			next = append(next, rule)
		}
		if !replaced {
			if len(cur) >= maxGuestSharedRules {
				return statusBadArgument
			}
			next = append(next, prefixRule{prefix, pol})
		}
		if r.guest.CompareAndSwap(old, &next) {
			return statusOK
		}
	}
}
