package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// LoadConfig reads a YAML config file, applies defaults for absent keys
// and validates the result.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy: config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return cfg, nil
}

// ParseConfig parses YAML config text. Keys absent from the text keep
// their defaults; unknown keys are an error. The result is not validated:
// call Validate (LoadConfig does).
func ParseConfig(b []byte) (*Config, error) {
	cfg := NewConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) { // empty document: all defaults
			return cfg, nil
		}
		return nil, fmt.Errorf("proxy: config: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("proxy: config: more than one YAML document")
	}
	return cfg, nil
}
