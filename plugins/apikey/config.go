package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"github.com/sluice-proxy/sluice/plugins/internal/glob"
	"strings"
)

// Config is the plugin configuration (JSON):
//
//	{"keys": [{"key": "sk-acme-1", "tenant": "acme", "models": ["gpt-4o", "llama-*"]},
//	          {"key_sha256": "9f86d08…", "tenant": "beta"}],
//	 "header": "x-sluice-tenant"}
type Config struct {
	// Keys are the accepted API keys (at least one).
	Keys []Key `json:"keys"`
	// Header is the request header that carries the key's tenant upstream
	// (any value the client sent is replaced). Default "x-sluice-tenant".
	Header string `json:"header"`
}

// Key is one accepted API key. Exactly one of Key and KeySHA256 is set.
type Key struct {
	// Key is the key in plain text.
	Key string `json:"key"`
	// KeySHA256 is the lower- or upper-case hex SHA-256 of the key, so the
	// configuration need not hold the secret.
	KeySHA256 string `json:"key_sha256"`
	// Tenant names the key's owner; it is sent upstream in Header and is
	// what plugins after this one (ratelimit) key on. Required.
	Tenant string `json:"tenant"`
	// Models restricts the models the key may use: exact names, or
	// patterns where '*' matches any run of characters ("llama-*").
	// Empty or absent: any model.
	Models []string `json:"models"`
}

// DefaultHeader is the default tenant header.
const DefaultHeader = "x-sluice-tenant"

// maxKeyLength bounds a presented key; longer ones are refused unhashed.
const maxKeyLength = 4096

// policy is a validated configuration.
type policy struct {
	header string
	keys   map[[sha256.Size]byte]*keyEntry
}

// keyEntry is one key's tenant and model allow-list.
type keyEntry struct {
	tenant string
	models []string // nil: any model
}

// parseConfig decodes and validates a configuration. Errors name the field
// at fault, e.g. `apikey: keys[1].tenant: required`.
func parseConfig(data []byte) (*policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(`apikey: the configuration is empty; it needs {"keys": [...]}`)
	}
	var cfg Config
	if err := config.Decode("apikey", data, &cfg); err != nil {
		return nil, err
	}
	p := &policy{header: DefaultHeader, keys: make(map[[sha256.Size]byte]*keyEntry, len(cfg.Keys))}
	if cfg.Header != "" {
		h := strings.ToLower(cfg.Header)
		if !config.ValidToken(h) {
			return nil, fmt.Errorf("apikey: header: %q is not a valid header name", cfg.Header)
		}
		if h == "authorization" || h == "x-api-key" {
			return nil, fmt.Errorf("apikey: header: %q carries keys and is removed; choose another name", cfg.Header)
		}
		p.header = h
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("apikey: keys: at least one key is required")
	}
	for i, k := range cfg.Keys {
		sum, err := keyHash(k)
		if err != nil {
			return nil, fmt.Errorf("apikey: keys[%d].%w", i, err)
		}
		if _, dup := p.keys[sum]; dup {
			return nil, fmt.Errorf("apikey: keys[%d]: the same key appears earlier in keys", i)
		}
		if k.Tenant == "" {
			return nil, fmt.Errorf("apikey: keys[%d].tenant: required", i)
		}
		if strings.ContainsAny(k.Tenant, "\r\n\x00") || strings.TrimSpace(k.Tenant) != k.Tenant {
			return nil, fmt.Errorf("apikey: keys[%d].tenant: %q has control bytes or surrounding spaces", i, k.Tenant)
		}
		e := &keyEntry{tenant: k.Tenant}
		for j, m := range k.Models {
			if m == "" {
				return nil, fmt.Errorf("apikey: keys[%d].models[%d]: empty model name", i, j)
			}
			e.models = append(e.models, m)
		}
		p.keys[sum] = e
	}
	return p, nil
}

func keyHash(k Key) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	switch {
	case k.Key != "" && k.KeySHA256 != "":
		return sum, errors.New("key/key_sha256: set one, not both")
	case k.Key != "":
		if len(k.Key) > maxKeyLength {
			return sum, fmt.Errorf("key: longer than %d bytes", maxKeyLength)
		}
		if strings.ContainsAny(k.Key, " \t\r\n\x00") {
			return sum, errors.New("key: contains whitespace or control bytes")
		}
		return sha256.Sum256([]byte(k.Key)), nil
	case k.KeySHA256 != "":
		b, err := hex.DecodeString(k.KeySHA256)
		if err != nil || len(b) != sha256.Size {
			return sum, fmt.Errorf("key_sha256: want 64 hex digits, got %q", k.KeySHA256)
		}
		copy(sum[:], b)
		return sum, nil
	}
	return sum, errors.New("key/key_sha256: one is required")
}

// lookup returns the entry of a presented key, or nil.
func (p *policy) lookup(presented string) *keyEntry {
	if presented == "" || len(presented) > maxKeyLength {
		return nil
	}
	return p.keys[sha256.Sum256([]byte(presented))]
}

// presentedKey extracts the key from the Authorization header ("Bearer
// <key>", scheme case-insensitive) or, when that carries no bearer token,
// from x-api-key. It returns "" when neither has one.
func presentedKey(authorization, xAPIKey string) string {
	if scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " "); ok && strings.EqualFold(scheme, "bearer") {
		if t := strings.TrimSpace(token); t != "" {
			return t
		}
	}
	return strings.TrimSpace(xAPIKey)
}

// allows reports whether the key may use model.
func (e *keyEntry) allows(model string) bool {
	if e.models == nil {
		return true
	}
	for _, pat := range e.models {
		if glob.Match(pat, model) {
			return true
		}
	}
	return false
}

// restricted reports whether the key has a model allow-list.
func (e *keyEntry) restricted() bool { return e.models != nil }
