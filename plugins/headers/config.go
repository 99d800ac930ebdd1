package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/internal/config"
)

// Config is the plugin configuration (JSON):
//
//	{"request":  {"add": {"k": "v"}, "set": {"k": "v"}, "remove": ["k"]},
//	 "response": {"add": {...},      "set": {...},      "remove": [...]}}
//
// Every field is optional; an empty configuration changes nothing.
type Config struct {
	Request  Ops `json:"request"`
	Response Ops `json:"response"`
}

// Ops are the header operations for one direction. They run in the order
// remove, set, add; within each, names are processed in sorted order so the
// result does not depend on JSON map order.
type Ops struct {
	// Add appends a value, keeping existing values of the header.
	Add map[string]string `json:"add"`
	// Set replaces every value of the header (creating it if absent).
	Set map[string]string `json:"set"`
	// Remove deletes every value of the header.
	Remove []string `json:"remove"`
}

// plan is a validated configuration, ready to apply.
type plan struct {
	request, response ops
}

// ops are one direction's operations with names lower-cased and sorted.
type ops struct {
	remove []string
	set    [][2]string
	add    [][2]string
}

func (o ops) empty() bool { return len(o.remove) == 0 && len(o.set) == 0 && len(o.add) == 0 }

// Pseudo-headers a plugin may set (never add or remove).
var (
	requestPseudo  = []string{":authority", ":method", ":path", ":scheme"}
	responsePseudo = []string{":status"}
)

// parseConfig decodes and validates a configuration. Empty (or all
// whitespace) data is the empty configuration. Errors name the field at
// fault, e.g. `headers: request.set: header name "x a" is not a valid token`.
func parseConfig(data []byte) (*plan, error) {
	var cfg Config
	if err := config.DecodeOptional("headers", data, &cfg); err != nil {
		return nil, err
	}
	req, err := compileOps("request", cfg.Request, requestPseudo)
	if err != nil {
		return nil, err
	}
	resp, err := compileOps("response", cfg.Response, responsePseudo)
	if err != nil {
		return nil, err
	}
	return &plan{request: req, response: resp}, nil
}

func compileOps(dir string, in Ops, pseudo []string) (ops, error) {
	var out ops
	seen := make(map[string]string) // lower-case name → "add"/"set"/"remove"
	claim := func(field, name string) (string, error) {
		lower := strings.ToLower(name)
		if err := validName(lower, field == "set", pseudo); err != nil {
			return "", fmt.Errorf("headers: %s.%s: %w", dir, field, err)
		}
		if prev, ok := seen[lower]; ok && (prev == field || prev == "remove" || field == "remove") {
			return "", fmt.Errorf("headers: %s.%s: header %q also appears in %s.%s", dir, field, lower, dir, prev)
		}
		seen[lower] = field
		return lower, nil
	}
	for _, name := range in.Remove {
		lower, err := claim("remove", name)
		if err != nil {
			return ops{}, err
		}
		out.remove = append(out.remove, lower)
	}
	for _, field := range []struct {
		name string
		m    map[string]string
		dst  *[][2]string
	}{{"set", in.Set, &out.set}, {"add", in.Add, &out.add}} {
		for name, value := range field.m {
			lower, err := claim(field.name, name)
			if err != nil {
				return ops{}, err
			}
			if err := validValue(value); err != nil {
				return ops{}, fmt.Errorf("headers: %s.%s: header %q: %w", dir, field.name, lower, err)
			}
			*field.dst = append(*field.dst, [2]string{lower, value})
		}
		slices.SortFunc(*field.dst, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	}
	slices.Sort(out.remove)
	return out, nil
}

// validName accepts an RFC 9110 token, or (only when pseudoOK) one of the
// listed pseudo-headers.
func validName(name string, pseudoOK bool, pseudo []string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	if name[0] == ':' {
		if !pseudoOK || !slices.Contains(pseudo, name) {
			return fmt.Errorf("pseudo-header %q cannot be used here (only %s, and only in set)", name, strings.Join(pseudo, ", "))
		}
		return nil
	}
	for i := 0; i < len(name); i++ {
		if !config.TokenChar(name[i]) {
			return fmt.Errorf("header name %q is not a valid token (byte %q at %d)", name, name[i], i)
		}
	}
	return nil
}

// validValue rejects the bytes that would split or truncate a header.
func validValue(v string) error {
	if i := strings.IndexAny(v, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("value contains a forbidden byte %q at %d", v[i], i)
	}
	return nil
}
