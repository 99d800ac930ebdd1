package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
	"github.com/sluice-proxy/sluice/plugins/internal/glob"
)

func TestParseConfig(t *testing.T) {
	sum := sha256.Sum256([]byte("sk-hashed"))
	p := configtest.MustParse(t, parseConfig, `{"keys": [
		{"key": "sk-acme", "tenant": "acme", "models": ["gpt-4o", "llama-*"]},
		{"key_sha256": "`+strings.ToUpper(hex.EncodeToString(sum[:]))+`", "tenant": "beta"}]}`)
	if p.header != DefaultHeader {
		t.Errorf("header %q, want the default %q", p.header, DefaultHeader)
	}
	acme := p.lookup("sk-acme")
	if acme == nil || acme.tenant != "acme" || !acme.restricted() {
		t.Fatalf("lookup(sk-acme) = %+v", acme)
	}
	beta := p.lookup("sk-hashed")
	if beta == nil || beta.tenant != "beta" || beta.restricted() {
		t.Fatalf("lookup(sk-hashed) = %+v", beta)
	}
	for _, k := range []string{"", "sk-acm", "sk-acme ", "SK-ACME", strings.Repeat("x", maxKeyLength+1)} {
		if e := p.lookup(k); e != nil {
			t.Errorf("lookup(%q) = %+v, want nil", k, e)
		}
	}
	if p := configtest.MustParse(t, parseConfig, `{"header": "X-Tenant", "keys": [{"key": "k", "tenant": "t"}]}`); p.header != "x-tenant" {
		t.Errorf("header %q, want it lower-cased", p.header)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "apikey: the configuration is empty"},
		{`{"keys": [`, "apikey: invalid JSON configuration"},
		{`{"key": []}`, `unknown field "key"`},
		{`{"keys": []} {}`, "unexpected data after the top-level object"},
		{`{}`, "apikey: keys: at least one key is required"},
		{`{"keys": [{"tenant": "t"}]}`, "apikey: keys[0].key/key_sha256: one is required"},
		{`{"keys": [{"key": "a", "key_sha256": "00", "tenant": "t"}]}`, "keys[0].key/key_sha256: set one, not both"},
		{`{"keys": [{"key": "a", "tenant": "t"}, {"key_sha256": "abc", "tenant": "t"}]}`, `keys[1].key_sha256: want 64 hex digits, got "abc"`},
		{`{"keys": [{"key": "a b", "tenant": "t"}]}`, "keys[0].key: contains whitespace"},
		{`{"keys": [{"key": "a"}]}`, "apikey: keys[0].tenant: required"},
		{`{"keys": [{"key": "a", "tenant": " t"}]}`, "keys[0].tenant:"},
		{`{"keys": [{"key": "a", "tenant": "t\n"}]}`, "keys[0].tenant:"},
		{`{"keys": [{"key": "a", "tenant": "t"}, {"key": "a", "tenant": "u"}]}`, "keys[1]: the same key appears earlier"},
		{`{"keys": [{"key": "a", "tenant": "t", "models": ["m", ""]}]}`, "keys[0].models[1]: empty model name"},
		{`{"header": "x tenant", "keys": [{"key": "a", "tenant": "t"}]}`, `apikey: header: "x tenant" is not a valid header name`},
		{`{"header": "Authorization", "keys": [{"key": "a", "tenant": "t"}]}`, "apikey: header: \"Authorization\" carries keys"},
		{`{"keys": [{"key": 1, "tenant": "t"}]}`, "cannot unmarshal number"},
	} {
		_, err := parseConfig([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestPresentedKey(t *testing.T) {
	for _, c := range []struct{ auth, xkey, want string }{
		{"Bearer sk-1", "", "sk-1"},
		{"bearer   sk-1  ", "", "sk-1"},
		{"BEARER sk-1", "sk-2", "sk-1"},
		{"Basic dXNlcg==", "sk-2", "sk-2"},
		{"Bearer ", "sk-2", "sk-2"},
		{"", " sk-2 ", "sk-2"},
		{"sk-1", "", ""},
		{"", "", ""},
	} {
		if got := presentedKey(c.auth, c.xkey); got != c.want {
			t.Errorf("presentedKey(%q, %q) = %q, want %q", c.auth, c.xkey, got, c.want)
		}
	}
}

func TestCheckBody(t *testing.T) {
	p := configtest.MustParse(t, parseConfig, `{"keys": [{"key": "r", "tenant": "t", "models": ["gpt-4o", "llama-*"]}, {"key": "any", "tenant": "u"}]}`)
	restricted, open := p.lookup("r"), p.lookup("any")
	f := func(e *keyEntry, body string, status uint32, code string) {
		t.Helper()
		r := checkBody(e, []byte(body))
		if status == 0 {
			if r != nil {
				t.Errorf("checkBody(%s) = %d %s, want it allowed", body, r.status, r.body)
			}
			return
		}
		if r == nil {
			t.Fatalf("checkBody(%s) allowed it, want %d %s", body, status, code)
		}
		var env struct {
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal(r.body, &env); err != nil {
			t.Fatalf("reply body %s: %v", r.body, err)
		}
		if r.status != status || env.Error["code"] != code {
			t.Errorf("checkBody(%s) = %d %s, want %d code %s", body, r.status, r.body, status, code)
		}
		for _, k := range []string{"message", "type", "param", "code"} {
			if _, ok := env.Error[k]; !ok {
				t.Errorf("reply body %s lacks error.%s", r.body, k)
			}
		}
	}
	f(restricted, `{"model":"gpt-4o","messages":[]}`, 0, "")
	f(restricted, `{"model":"llama-3-8b"}`, 0, "")
	f(restricted, `{"model":"gpt-4o-mini"}`, 403, "model_not_allowed")
	f(restricted, `{"model":"gpt-4o","model":"gpt-5"}`, 400, "invalid_body")
	f(restricted, `{"mod\u0065l":"gpt-5"}`, 403, "model_not_allowed")
	f(restricted, `{"messages":[{"model":"gpt-4o"}]}`, 400, "model_required")
	f(restricted, `{"model":42}`, 400, "invalid_type")
	f(restricted, `{"model":"gpt-4o"`, 400, "invalid_body")
	f(restricted, `["gpt-4o"]`, 400, "invalid_body")
	f(restricted, `model=gpt-4o`, 400, "invalid_body")
	f(open, `not json at all`, 0, "")
	f(open, `{"model":"anything"}`, 0, "")

	r := checkBody(restricted, []byte(`{"model":"x\"y"}`))
	if r == nil || !json.Valid(r.body) || !bytes.Contains(r.body, []byte("The model `x\\\"y` is not allowed")) {
		t.Errorf("403 body for a model with a quote: %s", r.body)
	}
}

func TestUnauthorizedBody(t *testing.T) {
	const want = `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`
	if string(unauthorized.body) != want || unauthorized.status != 401 {
		t.Errorf("401 reply %d %s, want %s", unauthorized.status, unauthorized.body, want)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{"keys":[{"key":"k","tenant":"t","models":["a*"]}]}`, `{"header":"x","keys":[{"key_sha256":"` +
		strings.Repeat("ab", 32) + `","tenant":"t"}]}`, `{}`, ``, `{"keys":[{"key":"a","key_sha256":"b"}]}`} {
		f.Add([]byte(s))
	}
	configtest.Fuzz(f, "apikey: ", parseConfig, func(t *testing.T, data []byte, p *policy) {
		if len(p.keys) == 0 || !config.ValidToken(p.header) {
			t.Fatalf("accepted %q with no keys or a bad header %q", data, p.header)
		}
		for _, e := range p.keys {
			if e.tenant == "" {
				t.Fatalf("accepted %q with an empty tenant", data)
			}
		}
	})
}

func FuzzCheckBody(f *testing.F) {
	for _, s := range []string{`{"model":"gpt-4o"}`, `{"model":"llama-x","model":"y"}`, `[]`, `{"model":null}`} {
		f.Add([]byte(s), "llama-*")
	}
	f.Fuzz(func(t *testing.T, body []byte, pattern string) {
		e := &keyEntry{tenant: "t", models: []string{pattern}}
		r := checkBody(e, body)
		if r == nil {
			// Allowed: encoding/json must agree that the body names one
			// allowed model.
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("allowed %q, which encoding/json rejects: %v", body, err)
			}
			var model string
			if err := json.Unmarshal(m["model"], &model); err != nil || !glob.Match(pattern, model) {
				t.Fatalf("allowed %q (model %q) for pattern %q", body, model, pattern)
			}
			return
		}
		if (r.status != 400 && r.status != 403) || !json.Valid(r.body) {
			t.Fatalf("checkBody(%q) = %d %q", body, r.status, r.body)
		}
	})
}
