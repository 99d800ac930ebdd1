package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
)

func TestParseConfig(t *testing.T) {
	r := configtest.MustParse(t, parseConfig, `{"aliases": {"gpt-4o": "llama-3-70b"},
		"routes": [{"model": "llama-3*", "pools": [{"pool": "stable", "weight": 90}, {"pool": "canary", "weight": 10}], "fallback": "backup"},
		           {"model": "mistral", "pools": [{"pool": "small"}]}],
		"reject_unknown_models": true}`)
	if !r.rejectUnknown || r.aliases["gpt-4o"] != "llama-3-70b" || len(r.routes) != 2 {
		t.Fatalf("parsed %+v", r)
	}
	if rt := r.routes[0]; rt.total != 100 || rt.fallback != "backup" || rt.pools[1] != "canary" {
		t.Errorf("route 0: %+v", rt)
	}
	if rt := r.routes[1]; rt.total != 1 || rt.weights[0] != 1 {
		t.Errorf("route 1 (default weight): %+v", rt)
	}
	if rt := r.match("llama-3-70b"); rt != &r.routes[0] {
		t.Errorf("match(llama-3-70b) = %v", rt)
	}
	if rt := r.match("mistral-7b"); rt != nil {
		t.Errorf("match(mistral-7b) = %+v, want nil (exact names are exact)", rt)
	}
	configtest.MustParse(t, parseConfig, `{"aliases": {"a": "b"}}`)
	configtest.MustParse(t, parseConfig, `{"routes": [{"model": "*", "pools": [{"pool": "p", "weight": 0}, {"pool": "q", "weight": 1}]}]}`)
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "modelrouter: the configuration is empty"},
		{`{"routes": [`, "modelrouter: invalid JSON configuration"},
		{`{"route": []}`, `unknown field "route"`},
		{`{"aliases": {"a": "b"}} []`, "unexpected data after the top-level object"},
		{`{}`, "modelrouter: aliases/routes: set at least one"},
		{`{"aliases": {"": "b"}}`, "modelrouter: aliases: empty model name"},
		{`{"aliases": {"a": ""}}`, `modelrouter: aliases["a"]: empty target`},
		{`{"aliases": {"a": "a"}}`, `modelrouter: aliases["a"]: an alias of itself`},
		{`{"aliases": {"a": "b", "b": "c"}}`, `modelrouter: aliases["a"]: target "b" is itself an alias`},
		{`{"routes": [{"pools": [{"pool": "p"}]}]}`, "modelrouter: routes[0].model: required"},
		{`{"routes": [{"model": "m"}]}`, "modelrouter: routes[0].pools: at least one pool is required"},
		{`{"routes": [{"model": "m", "pools": [{"weight": 1}]}]}`, "modelrouter: routes[0].pools[0].pool: required"},
		{`{"routes": [{"model": "m", "pools": [{"pool": "p"}, {"pool": "p"}]}]}`, `routes[0].pools[1].pool: "p" appears twice`},
		{`{"routes": [{"model": "m", "pools": [{"pool": "p", "weight": -5}]}]}`, "modelrouter: routes[0].pools[0].weight: -5 is not in 0..1000000"},
		{`{"routes": [{"model": "m", "pools": [{"pool": "p", "weight": 1000001}]}]}`, "weight: 1000001 is not in"},
		{`{"routes": [{"model": "m", "pools": [{"pool": "p", "weight": 1}]}, {"model": "n", "pools": [{"pool": "p", "weight": 0}]}]}`,
			"modelrouter: routes[1].pools: the weights sum to 0"},
	} {
		_, err := parseConfig([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func healthOf(m map[string]bool) health {
	return func(pool string) (bool, bool) { return m[pool], true }
}

func TestChoose(t *testing.T) {
	r := configtest.MustParse(t, parseConfig, `{"routes": [{"model": "m", "pools": [{"pool": "stable", "weight": 90}, {"pool": "canary", "weight": 10}, {"pool": "dark", "weight": 0}], "fallback": "backup"}]}`)
	rt := &r.routes[0]
	// The split follows the weights exactly over one cycle of rnd.
	counts := map[string]int{}
	for rnd := range uint64(100) {
		p, _ := rt.choose(rnd, unknownHealth)
		counts[p]++
	}
	if counts["stable"] != 90 || counts["canary"] != 10 || counts["dark"] != 0 {
		t.Errorf("split %v, want stable 90 canary 10", counts)
	}
	all := map[string]bool{"stable": true, "canary": true, "dark": true, "backup": true}
	for _, c := range []struct {
		name     string
		rnd      uint64
		healthy  map[string]bool
		want     string
		diverted bool
	}{
		{"all healthy", 95, all, "canary", false},
		{"canary down: its share goes to the healthy pools", 95, map[string]bool{"stable": true, "backup": true}, "stable", true},
		{"weighted pools down: the zero-weight pool takes over", 5, map[string]bool{"dark": true, "backup": true}, "dark", true},
		{"only the fallback is healthy", 5, map[string]bool{"backup": true}, "backup", true},
		{"nothing is healthy: the first choice stands", 95, nil, "canary", false},
	} {
		if got, diverted := rt.choose(c.rnd, healthOf(c.healthy)); got != c.want || diverted != c.diverted {
			t.Errorf("%s: choose = %q, %v; want %q, %v", c.name, got, diverted, c.want, c.diverted)
		}
	}
	if got := r.poolNames(); strings.Join(got, ",") != "stable,canary,dark,backup" {
		t.Errorf("poolNames = %q", got)
	}
}

func TestRewriteModel(t *testing.T) {
	body := []byte(`{"model" : "gpt-4o", "messages":[{"role":"user","content":"hi"}]}`)
	ms, err := jsonscan.Object(body, "model")
	if err != nil {
		t.Fatal(err)
	}
	got := rewriteModel(body, ms[0].Start, ms[0].End, `llama "3"`)
	const want = `{"model" : "llama \"3\"", "messages":[{"role":"user","content":"hi"}]}`
	if string(got) != want {
		t.Errorf("rewritten %s, want %s", got, want)
	}
}

func TestParseUpstreams(t *testing.T) {
	h, err := parseUpstreams([]byte(`{"pools":{
		"a":{"policy":"least_queue","healthy":1,"total":2,"endpoints":{"127.0.0.1:1":{"healthy":true},"127.0.0.1:2":{"healthy":false}}},
		"b":{"healthy":0,"total":1,"endpoints":{"127.0.0.1:3":{"healthy":false,"in_flight":3}}},
		"c":{"endpoints":{"127.0.0.1:4":{"healthy":true}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for pool, want := range map[string]bool{"a": true, "b": false, "c": true, "missing": false} {
		if ok, known := h(pool); ok != want || !known {
			t.Errorf("health(%q) = %v, %v; want %v, true", pool, ok, known, want)
		}
	}
	for _, bad := range []string{``, `[]`, `{}`, `{"pools":[]}`} {
		if _, err := parseUpstreams([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "modelrouter: sluice.upstreams") {
			t.Errorf("parseUpstreams(%q) = %v", bad, err)
		}
	}
}

func TestModelNotFound(t *testing.T) {
	const want = `{"error":{"message":"The model ` + "`x`" + ` does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`
	if got := string(modelNotFound("x")); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{"aliases":{"a":"b"}}`, `{"routes":[{"model":"m*","pools":[{"pool":"p","weight":3},{"pool":"q"}],"fallback":"f"}]}`, `{}`} {
		f.Add([]byte(s))
	}
	configtest.Fuzz(f, "modelrouter: ", parseConfig, func(t *testing.T, data []byte, r *router) {
		for _, rt := range r.routes {
			sum := 0
			for _, w := range rt.weights {
				sum += w
			}
			if sum != rt.total || sum <= 0 || len(rt.pools) != len(rt.weights) {
				t.Fatalf("accepted %q with route %+v", data, rt)
			}
			for rnd := range uint64(5) {
				if p, _ := rt.choose(rnd*7919, unknownHealth); p == "" {
					t.Fatalf("choose gave an empty pool for %+v", rt)
				}
			}
		}
	})
}

// FuzzRewriteModel checks that rewriting the model keeps the body valid
// JSON with the new model and everything else unchanged.
func FuzzRewriteModel(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","stream":true}`), "llama")
	f.Add([]byte(`{"a":[1,{"model":"x"}],"model":null}`), "m\"\u2028")
	f.Fuzz(func(t *testing.T, body []byte, model string) {
		ms, err := jsonscan.Object(body, "model")
		if err != nil || !ms[0].Found() {
			return
		}
		out := rewriteModel(body, ms[0].Start, ms[0].End, model)
		var before, after map[string]json.RawMessage
		if err := json.Unmarshal(body, &before); err != nil {
			t.Fatalf("scanner accepted %q, encoding/json did not: %v", body, err)
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("rewritten body %q is not JSON: %v", out, err)
		}
		// encoding/json replaces each invalid UTF-8 byte with U+FFFD, as
		// the rewrite does: compare with its round trip.
		var got, want string
		q, _ := json.Marshal(model)
		if err := json.Unmarshal(q, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(after["model"], &got); err != nil || got != want {
			t.Fatalf("rewritten model %q, want %q", after["model"], want)
		}
		if len(before) != len(after) {
			t.Fatalf("members %d → %d", len(before), len(after))
		}
	})
}
