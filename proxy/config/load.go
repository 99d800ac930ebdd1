package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads a YAML config file, applies defaults for absent keys
// and validates the result.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy: config: %w", err)
	}
	cfg, err := Parse(b)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return cfg, nil
}

// Parse parses YAML config text. Keys absent from the text keep
// their defaults; unknown keys are an error. The result is not validated:
// call Validate (Load does).
func Parse(b []byte) (*Config, error) {
	cfg := New()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) { // empty document: all defaults
			return cfg, nil
		}
		return nil, fmt.Errorf("proxy: config: %w", nameFields(err, b))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("proxy: config: more than one YAML document")
	}
	return cfg, nil
}

// nameFields adds the key found on each line a yaml.TypeError points at,
// so "line 3: cannot unmarshal !!str `x` into int" names its field.
func nameFields(err error, src []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	lines := strings.Split(string(src), "\n")
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		var n int
		if _, scanErr := fmt.Sscanf(m, "line %d:", &n); scanErr != nil || n < 1 || n > len(lines) {
			continue
		}
		key := strings.TrimSpace(lines[n-1])
		key = strings.TrimSpace(strings.TrimPrefix(key, "- "))
		if j := strings.IndexByte(key, ':'); j > 0 {
			msgs[i] = m + " (field " + strconv.Quote(key[:j]) + ")"
		}
	}
	return errors.New("yaml: " + strings.Join(msgs, "; "))
}
