package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration that reads from YAML as a Go duration string
// ("60s", "1m30s", "250ms").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "want a duration such as \"60s\"")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return nodeError(n, "want a duration such as \"60s\", got %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String returns the duration in Go's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// ByteSize is a size in bytes that reads from YAML as an integer or with a
// binary suffix ("4MiB", "512KiB", "1GiB").
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "want a size such as 4194304 or \"4MiB\"")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return nodeError(n, "%v", err)
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses an integer byte count with an optional KiB, MiB or
// GiB suffix.
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("want a size such as 4194304 or \"4MiB\", got %q", s)
	}
	return v * mult, nil
}

// RawConfig is configuration handed verbatim to a plugin: a YAML string is
// kept as-is, a mapping or list becomes JSON.
type RawConfig []byte

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *RawConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!str" || n.Tag == "") {
		*r = RawConfig(n.Value)
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		*r = nil
		return nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Errorf("cannot convert to JSON: %w", err)
	}
	*r = b
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (r RawConfig) MarshalYAML() (any, error) { return string(r), nil }

// jsonable converts what yaml.v3 decodes into values encoding/json accepts
// (it already uses map[string]any for string keys; other key types are
// stringified).
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	}
	return v
}

// nodeError reports a bad value as a yaml.TypeError carrying its line, so
// that Parse names the key it belongs to, however deeply nested.
func nodeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}
