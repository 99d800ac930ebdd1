package config

import (
	"errors"
	"strings"
	"testing"
)

// rejectCase is a config edit that Validate must refuse, naming field.
type rejectCase struct {
	name  string
	edit  func(c *Config)
	field string
}

// checkRejects applies each edit to a fresh ok() config and asserts that
// Validate returns an *Error naming the field.
func checkRejects(t *testing.T, ok func() *Config, tests []rejectCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.edit(c)
			err := c.Validate()
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want a *Error", err)
			}
			if ce.Field != tc.field {
				t.Fatalf("field = %q, want %q (error: %v)", ce.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name the field %q", err, tc.field)
			}
		})
	}
}

// parseCase is YAML that Parse must refuse with an error mentioning want.
type parseCase struct{ name, yaml, want string }

// checkParseRejects asserts that Parse refuses each case.
func checkParseRejects(t *testing.T, tests []parseCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want error mentioning %q", tc.yaml, err, tc.want)
			}
		})
	}
}

// mustParseValid parses yaml and validates it, failing the test on either
// error.
func mustParseValid(t *testing.T, yaml string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}
