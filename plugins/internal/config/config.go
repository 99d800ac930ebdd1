// Package config holds what every plugin's configuration parser does the
// same way: strict JSON decoding and RFC 9110 token checks for configured
// header names and methods. It builds for the host and for wasip1 guests,
// so parsers stay unit tested and fuzzed on the host.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Decode decodes the JSON object data into v strictly: an unknown field,
// a wrong type or anything after the top-level value is an error. Errors
// are prefixed with plugin, e.g. `apikey: invalid JSON configuration:
// json: unknown field "kyes"`. Callers decide what empty data means before
// calling (some plugins require a configuration, others default it).
func Decode(plugin string, data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: invalid JSON configuration: %w", plugin, err)
	}
	if dec.More() {
		return errors.New(plugin + ": invalid JSON configuration: unexpected data after the top-level object")
	}
	return nil
}

// DecodeOptional is Decode for plugins whose configuration may be empty:
// empty or all-whitespace data leaves v unchanged (the defaults) and is no
// error; anything else is decoded as strictly as Decode does.
func DecodeOptional(plugin string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return Decode(plugin, data, v)
}

// tchar lists the RFC 9110 section 5.6.2 token characters besides ALPHA
// and DIGIT.
const tchar = "!#$%&'*+-.^_`|~"

// TokenChar reports whether c is an RFC 9110 tchar, a byte a token may
// hold; parsers that name the bad byte of a token check with it.
func TokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(tchar, c) >= 0
}

// ValidToken reports whether s is a non-empty RFC 9110 token, the syntax
// of a header field name and of a method.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !TokenChar(s[i]) {
			return false
		}
	}
	return true
}
