package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
)

func TestParseConfig(t *testing.T) {
	pl, err := parseConfig([]byte(`{
		"request":  {"add": {"X-B": "2", "x-a": "1"}, "set": {":authority": "llm.internal", "X-Model": "m"}, "remove": ["Cookie", "x-debug"]},
		"response": {"set": {":status": "200"}, "add": {"x-served-by": "sluice"}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &plan{
		request: ops{
			remove: []string{"cookie", "x-debug"},
			set:    [][2]string{{":authority", "llm.internal"}, {"x-model", "m"}},
			add:    [][2]string{{"x-a", "1"}, {"x-b", "2"}},
		},
		response: ops{
			set: [][2]string{{":status", "200"}},
			add: [][2]string{{"x-served-by", "sluice"}},
		},
	}
	if !reflect.DeepEqual(pl, want) {
		t.Errorf("plan\n got %+v\nwant %+v", pl, want)
	}
}

func TestParseConfigEmpty(t *testing.T) {
	for _, in := range []string{"", "  \n", "{}", `{"request": {}, "response": {"add": {}}}`} {
		pl, err := parseConfig([]byte(in))
		if err != nil {
			t.Errorf("parseConfig(%q): %v", in, err)
			continue
		}
		if !pl.request.empty() || !pl.response.empty() {
			t.Errorf("parseConfig(%q) = %+v, want no operations", in, pl)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"request": `, "headers: invalid JSON configuration: unexpected EOF"},
		{`[]`, "headers: invalid JSON configuration: json: cannot unmarshal array"},
		{`{"request": {"add": {"x": 1}}}`, "cannot unmarshal number"},
		{`{"request": {"append": {}}}`, `unknown field "append"`},
		{`{} {}`, "unexpected data after the top-level object"},
		{`{"request": {"add": {"": "v"}}}`, "headers: request.add: empty header name"},
		{`{"request": {"set": {"x y": "v"}}}`, `headers: request.set: header name "x y" is not a valid token (byte ' ' at 1)`},
		{`{"response": {"remove": ["x:y"]}}`, `headers: response.remove: header name "x:y" is not a valid token`},
		{`{"request": {"add": {"x": "a\r\nInjected: 1"}}}`, `headers: request.add: header "x": value contains a forbidden byte '\r' at 1`},
		{`{"request": {"set": {"x": "a\u0000"}}}`, `value contains a forbidden byte '\x00'`},
		{`{"request": {"add": {":path": "/x"}}}`, `headers: request.add: pseudo-header ":path" cannot be used here (only :authority, :method, :path, :scheme, and only in set)`},
		{`{"request": {"set": {":status": "200"}}}`, `pseudo-header ":status" cannot be used here`},
		{`{"response": {"set": {":path": "/"}}}`, `headers: response.set: pseudo-header ":path"`},
		{`{"request": {"remove": [":authority"]}}`, `headers: request.remove: pseudo-header ":authority"`},
		{`{"request": {"remove": ["x-a", "X-A"]}}`, `headers: request.remove: header "x-a" also appears in request.remove`},
		{`{"request": {"remove": ["x-a"], "set": {"X-A": "1"}}}`, `headers: request.set: header "x-a" also appears in request.remove`},
		{`{"request": {"remove": ["x-a"], "add": {"x-a": "1"}}}`, `headers: request.add: header "x-a" also appears in request.remove`},
		{`{"response": {"set": {"x-a": "1", "X-a": "2"}}}`, `headers: response.set: header "x-a" also appears in response.set`},
	} {
		_, err := parseConfig([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s) error %v, want it to contain %q", c.in, err, c.want)
		}
	}
}

// Setting and adding the same header is allowed: the set replaces, the add
// appends a second value.
func TestParseConfigSetAndAdd(t *testing.T) {
	pl, err := parseConfig([]byte(`{"request": {"set": {"x": "1"}, "add": {"X": "2"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pl.request.set, [][2]string{{"x", "1"}}) || !reflect.DeepEqual(pl.request.add, [][2]string{{"x", "2"}}) {
		t.Errorf("plan %+v", pl.request)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"request": {"add": {"x-a": "1"}, "set": {":path": "/"}, "remove": ["y"]}, "response": {"set": {":status": "201"}}}`))
	f.Add([]byte(`{"request": {"remove": ["x-a"], "set": {"X-A": "1"}}}`))
	f.Add([]byte(`{"response": {"add": {"a": "b\r\n"}}}`))
	f.Add([]byte(``))
	configtest.Fuzz(f, "headers: ", parseConfig, func(t *testing.T, data []byte, pl *plan) {
		for _, o := range []struct {
			dir    string
			ops    ops
			pseudo []string
		}{{"request", pl.request, requestPseudo}, {"response", pl.response, responsePseudo}} {
			for _, name := range o.ops.remove {
				if validName(name, false, o.pseudo) != nil || name != strings.ToLower(name) {
					t.Fatalf("%s: accepted invalid remove name %q", o.dir, name)
				}
			}
			for _, kv := range append(append([][2]string{}, o.ops.set...), o.ops.add...) {
				if validName(kv[0], true, o.pseudo) != nil || kv[0] != strings.ToLower(kv[0]) || validValue(kv[1]) != nil {
					t.Fatalf("%s: accepted invalid header %q", o.dir, kv)
				}
			}
		}
	})
}
