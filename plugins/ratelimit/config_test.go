package main

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
)

func TestParseConfigDefaults(t *testing.T) {
	s := configtest.MustParse(t, parseConfig, `{"requests_per_minute": 60}`)
	if s.limits != (limits{rpm: 60}) || s.keyHeader != DefaultKeyHeader || s.defaultEstimate != DefaultTokenEstimate ||
		s.casRetries != DefaultMaxCASRetries || s.promptBytes != 0 || s.failureModeDeny || s.overrides != nil {
		t.Errorf("defaults: %+v", s)
	}
	s = configtest.MustParse(t, parseConfig, `{"tokens_per_minute": 1000, "key_header": "X-Team", "default_token_estimate": 10,
		"prompt_bytes_per_token": 4, "failure_mode_deny": true, "max_cas_retries": 3,
		"overrides": {"acme": {"tokens_per_minute": 5000, "requests_per_minute": 7}, "free": {"tokens_per_minute": 0}}}`)
	if s.limits != (limits{tpm: 1000}) || s.keyHeader != "x-team" || s.defaultEstimate != 10 || s.promptBytes != 4 ||
		!s.failureModeDeny || s.casRetries != 3 {
		t.Errorf("explicit: %+v", s)
	}
	if l := s.limitsFor(rateKey{value: "acme"}); l != (limits{rpm: 7, tpm: 5000}) {
		t.Errorf("acme limits %+v", l)
	}
	if l := s.limitsFor(rateKey{value: "free"}); l != (limits{}) {
		t.Errorf("free limits %+v, want unlimited", l)
	}
	if l := s.limitsFor(rateKey{value: "acme", fromIP: true}); l != s.limits {
		t.Errorf("an IP key matched an override: %+v", l)
	}
	if l := s.limitsFor(rateKey{value: "other"}); l != s.limits {
		t.Errorf("other limits %+v", l)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "ratelimit: the configuration is empty"},
		{`{"requests_per_minute": 1`, "ratelimit: invalid JSON configuration"},
		{`{"requests_per_min": 1}`, `unknown field "requests_per_min"`},
		{`{"requests_per_minute": 1} 1`, "unexpected data after the top-level object"},
		{`{}`, "ratelimit: requests_per_minute/tokens_per_minute: set at least one"},
		{`{"requests_per_minute": -1}`, "ratelimit: requests_per_minute: -1 is negative"},
		{`{"tokens_per_minute": 2199023255553}`, "ratelimit: tokens_per_minute: 2199023255553 is above the maximum"},
		{`{"requests_per_minute": 1, "default_token_estimate": -5}`, "ratelimit: default_token_estimate: -5 is negative"},
		{`{"requests_per_minute": 1, "prompt_bytes_per_token": -1}`, "ratelimit: prompt_bytes_per_token: -1 is negative"},
		{`{"requests_per_minute": 1, "key_header": "x y"}`, `ratelimit: key_header: "x y" is not a valid header name`},
		{`{"requests_per_minute": 1, "max_cas_retries": -1}`, "ratelimit: max_cas_retries: -1 is not in 0..1000"},
		{`{"requests_per_minute": 1, "overrides": {"": {}}}`, "ratelimit: overrides: empty key"},
		{`{"requests_per_minute": 1, "overrides": {"a": {"tokens_per_minute": -2}}}`, `ratelimit: overrides["a"].tokens_per_minute: -2 is negative`},
		{`{"requests_per_minute": 1.5}`, "cannot unmarshal number 1.5"},
	} {
		_, err := parseConfig([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestKeyOf(t *testing.T) {
	for _, c := range []struct {
		header, addr string
		want         rateKey
	}{
		{"acme", "10.0.0.1:5000", rateKey{value: "acme"}},
		{"  acme ", "", rateKey{value: "acme"}},
		{"", "10.0.0.1:5000", rateKey{value: "10.0.0.1", fromIP: true}},
		{" ", "[::1]:80", rateKey{value: "::1", fromIP: true}},
		{"", "::1", rateKey{value: "::1", fromIP: true}},
		{"", "unknown", rateKey{value: "unknown", fromIP: true}},
	} {
		if got := keyOf(c.header, c.addr); got != c.want {
			t.Errorf("keyOf(%q, %q) = %+v, want %+v", c.header, c.addr, got, c.want)
		}
	}
	if a, b := sharedKey("rl", rateKey{value: "1.2.3.4"}), sharedKey("rl", rateKey{value: "1.2.3.4", fromIP: true}); a == b {
		t.Errorf("a header key and an IP key share %q", a)
	}
	long := sharedKey("rl", rateKey{value: strings.Repeat("x", 500)})
	if len(long) > 100 || !strings.HasPrefix(long, "ratelimit/rl/k:sha256:") {
		t.Errorf("long key %q", long)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{"requests_per_minute":1}`, `{"tokens_per_minute":5,"overrides":{"a":{"requests_per_minute":0}}}`,
		`{}`, ``, `{"key_header":""}`} {
		f.Add([]byte(s))
	}
	configtest.Fuzz(f, "ratelimit: ", parseConfig, func(t *testing.T, data []byte, s *settings) {
		if s.limits.rpm == 0 && s.limits.tpm == 0 || !config.ValidToken(s.keyHeader) || s.defaultEstimate <= 0 || s.casRetries <= 0 {
			t.Fatalf("accepted %q as %+v", data, s)
		}
		for _, l := range append([]limits{s.limits}, mapValues(s.overrides)...) {
			if l.rpm < 0 || l.tpm < 0 || l.rpm > maxLimit || l.tpm > maxLimit {
				t.Fatalf("accepted %q with limits %+v", data, l)
			}
		}
	})
}

func mapValues(m map[string]limits) []limits {
	var out []limits
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestParseConfigStateTTL(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"requests_per_minute": 1}`:                       "",
		`{"requests_per_minute": 1, "state_ttl": "2h"}`:    "",
		`{"requests_per_minute": 1, "state_ttl": "500ms"}`: "state_ttl",
		`{"requests_per_minute": 1, "state_ttl": "1000h"}`: "state_ttl",
		`{"requests_per_minute": 1, "state_ttl": "soon"}`:  "state_ttl",
	} {
		s, err := parseConfig([]byte(cfg))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", cfg, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want one naming %s", cfg, err, want)
		case want == "" && cfg == `{"requests_per_minute": 1}` && s.stateTTL != DefaultStateTTL:
			t.Errorf("default state_ttl %v, want %v", s.stateTTL, DefaultStateTTL)
		}
	}
}
