package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
)

func TestParseConfigDefaults(t *testing.T) {
	rules := configtest.MustParse(t, parseConfig, `{"rules": [
		{"path_prefix": "/admin"},
		{"header": {"name": "X-Blocked", "value": "1"}, "status": 400, "message": "blocked"},
		{"header": {"name": "x-present"}, "status": 401},
		{"path_prefix": "/v1", "status": 403, "type": "invalid_request_error"}]}`)
	if len(rules) != 4 {
		t.Fatalf("%d rules, want 4", len(rules))
	}
	type detail struct{ Message, Type, Code string }
	for i, want := range []struct {
		status uint32
		detail
	}{
		{403, detail{defaultMessage, "permission_error", "denied"}},
		{400, detail{"blocked", "invalid_request_error", "denied"}},
		{401, detail{defaultMessage, "permission_error", "denied"}},
		{403, detail{defaultMessage, "invalid_request_error", "denied"}},
	} {
		r := rules[i]
		if r.status != want.status {
			t.Errorf("rule %d status %d, want %d", i, r.status, want.status)
		}
		var body map[string]map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("rule %d body %s: %v", i, r.body, err)
		}
		e := body["error"]
		if e["message"] != want.Message || e["type"] != want.Type || e["code"] != want.Code {
			t.Errorf("rule %d body %s, want %+v", i, r.body, want.detail)
		}
		if v, ok := e["param"]; !ok || v != nil {
			t.Errorf("rule %d body %s: param must be present and null", i, r.body)
		}
	}
	if rules[1].headerName != "x-blocked" {
		t.Errorf("header name %q, want it lower-cased", rules[1].headerName)
	}
	if string(rules[0].body) != `{"error":{"message":"Request denied by policy.","type":"permission_error","param":null,"code":"denied"}}` {
		t.Errorf("body %s", rules[0].body)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "deny: the configuration is empty"},
		{`{"rules": `, "deny: invalid JSON configuration: unexpected EOF"},
		{`{"rule": []}`, `deny: invalid JSON configuration: json: unknown field "rule"`},
		{`{"rules": []} x`, "unexpected data after the top-level object"},
		{`{}`, "deny: rules: at least one rule is required"},
		{`{"rules": [{"message": "x"}]}`, "deny: rules[0].path_prefix/header: a rule needs path_prefix, header or both"},
		{`{"rules": [{"path_prefix": "/a"}, {"path_prefix": "b"}]}`, `deny: rules[1].path_prefix: "b" does not start with /`},
		{`{"rules": [{"header": {"value": "1"}}]}`, "deny: rules[0].header.name: empty header name"},
		{`{"rules": [{"header": {"name": "x y"}}]}`, `deny: rules[0].header.name: "x y" contains whitespace`},
		{`{"rules": [{"path_prefix": "/", "status": 302}]}`, "deny: rules[0].status: 302 is not in 400..599"},
		{`{"rules": [{"path_prefix": "/", "status": 600}]}`, "status: 600 is not in 400..599"},
		{`{"rules": [{"path_prefix": "/", "status": -1}]}`, "status: -1 is not in 400..599"},
		{`{"rules": [{"path_prefix": "/", "type": "server_error"}]}`, `deny: rules[0].type: "server_error" is not permission_error or invalid_request_error`},
		{`{"rules": [{"path_prefix": "/", "status": "403"}]}`, "cannot unmarshal string"},
	} {
		_, err := parseConfig([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s) error %v, want it to contain %q", c.in, err, c.want)
		}
	}
}

func TestMatch(t *testing.T) {
	rules := configtest.MustParse(t, parseConfig, `{"rules": [
		{"path_prefix": "/admin", "status": 403},
		{"header": {"name": "x-blocked", "value": "1"}, "status": 400},
		{"path_prefix": "/v1/embeddings", "header": {"name": "x-tier", "value": "free"}, "status": 402},
		{"header": {"name": ":method", "value": "DELETE"}, "status": 405},
		{"header": {"name": "x-present"}, "status": 401}]}`)
	for _, c := range []struct {
		headers [][2]string
		want    uint32 // 0: no match
	}{
		{[][2]string{{":path", "/admin"}}, 403},
		{[][2]string{{":path", "/admin/users?x=1"}}, 403},
		{[][2]string{{":path", "/administrator"}}, 403}, // plain prefix, documented
		{[][2]string{{":path", "//admin"}}, 403},
		{[][2]string{{":path", "/./admin"}}, 403},
		{[][2]string{{":path", "/v1/../admin/x"}}, 403},
		{[][2]string{{":path", "/%61dmin"}}, 403},
		{[][2]string{{":path", "/%2Fadmin"}}, 403},
		{[][2]string{{":path", "/Admin"}}, 0}, // paths are case-sensitive
		{[][2]string{{":path", "/public?next=/admin"}}, 0},
		{[][2]string{{":path", "/%zzadmin"}}, 0}, // undecodable: only the raw form
		{[][2]string{{":path", "*"}}, 0},
		{[][2]string{}, 0},
		{[][2]string{{":path", "/ok"}, {"X-Blocked", "1"}}, 400},
		{[][2]string{{":path", "/ok"}, {"x-blocked", "0"}, {"x-blocked", "1"}}, 400}, // any value
		{[][2]string{{":path", "/ok"}, {"x-blocked", "10"}}, 0},
		{[][2]string{{":path", "/v1/embeddings"}, {"x-tier", "free"}}, 402},
		{[][2]string{{":path", "/v1/embeddings"}, {"x-tier", "paid"}}, 0},
		{[][2]string{{":path", "/v1/chat"}, {"x-tier", "free"}}, 0},
		{[][2]string{{":method", "DELETE"}, {":path", "/x"}}, 405},
		{[][2]string{{":path", "/x"}, {"x-present", ""}}, 401},
		{[][2]string{{":path", "/admin"}, {"x-blocked", "1"}}, 403}, // first rule wins
	} {
		var got uint32
		if r := match(rules, c.headers); r != nil {
			got = r.status
		}
		if got != c.want {
			t.Errorf("match(%q) = %d, want %d", c.headers, got, c.want)
		}
	}
}

func TestPathForms(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"/a/b", []string{"/a/b"}},
		{"/a/b/", []string{"/a/b/"}},
		{"/", []string{"/"}},
		{"//a///b?q#f", []string{"/a/b"}},
		{"/a/./b/../c", []string{"/a/c"}},
		{"/../../etc", []string{"/etc"}},
		{"/%61", []string{"/%61", "/a"}},
		{"/a%2F..%2Fb", []string{"/a%2F..%2Fb", "/b"}},
		{"/%zz", []string{"/%zz"}},
		{"", []string{}},
		{"*", []string{}},
		{"?x", []string{}},
	} {
		if got := pathForms(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("pathForms(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"rules": [{"path_prefix": "/admin", "header": {"name": "x", "value": "1"}, "status": 429, "message": "m", "type": "permission_error"}]}`))
	f.Add([]byte(`{"rules": [{"header": {"name": "x"}}]}`))
	f.Add([]byte(`{"rules": [{"path_prefix": "a"}]}`))
	configtest.Fuzz(f, "deny: ", parseConfig, func(t *testing.T, data []byte, rules []rule) {
		for i, r := range rules {
			if r.status < 400 || r.status > 599 || (r.pathPrefix == "" && r.headerName == "") || !json.Valid(r.body) {
				t.Fatalf("accepted invalid rule %d: %+v", i, r)
			}
		}
	})
}

func FuzzMatchPath(f *testing.F) {
	rules := []rule{{pathPrefix: "/admin", status: 403}}
	for _, s := range []string{"/admin", "/%61dmin", "//a/../admin/", "/%", "*", "", "/a?b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, form := range pathForms(p) {
			if !strings.HasPrefix(form, "/") || strings.Contains(form, "//") {
				t.Fatalf("pathForms(%q) gave the uncleaned form %q", p, form)
			}
		}
		match(rules, [][2]string{{":path", p}})
	})
}
