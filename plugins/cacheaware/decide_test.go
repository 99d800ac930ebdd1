package main

import (
	"strings"
	"testing"
	"time"
)

func eps(loads ...float64) []endpoint {
	out := make([]endpoint, len(loads))
	for i, l := range loads {
		out[i] = endpoint{addr: string(rune('a' + i)), load: l}
	}
	return out
}

func TestDecide(t *testing.T) {
	s, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		loads []float64
		c     choice
		want  string
		why   reason
	}{
		{"no match: least load", []float64{3, 1, 2}, choice{total: 10}, "b", reasonLeastLoad},
		{"prefix", []float64{3, 1, 2}, choice{matched: 9, total: 10, prefixOwner: "a"}, "a", reasonPrefix},
		{"match under cache_threshold", []float64{3, 1, 2}, choice{matched: 2, total: 10, prefixOwner: "a"}, "b", reasonLeastLoad},
		{"busy but within the thresholds", []float64{20, 0, 2}, choice{matched: 10, total: 10, prefixOwner: "a"}, "a", reasonPrefix},
		{"overloaded: abs and rel", []float64{70, 5, 2}, choice{matched: 10, total: 10, prefixOwner: "a"}, "c", reasonOverload},
		{"past the default abs threshold (24, not SGLang's 64)", []float64{40, 5, 2}, choice{matched: 10, total: 10, prefixOwner: "a"}, "c", reasonOverload},
		{"abs exceeded, rel not", []float64{200, 150, 150}, choice{matched: 10, total: 10, prefixOwner: "a"}, "a", reasonPrefix},
		{"session beats prefix", []float64{1, 1, 1}, choice{matched: 10, total: 10, prefixOwner: "a", sessionOwner: "c"}, "c", reasonSession},
		{"session overloaded", []float64{1, 1, 100}, choice{sessionOwner: "c"}, "a", reasonOverload},
		{"owner gone", []float64{1, 0}, choice{matched: 10, total: 10, prefixOwner: "z"}, "b", reasonLeastLoad},
	}
	for _, c := range cases {
		e := eps(c.loads...)
		why := s.decide(e, c.c)
		if e[0].addr != c.want || why != c.why {
			t.Errorf("%s: chose %s (%s), want %s (%s)", c.name, e[0].addr, reasonNames[why], c.want, reasonNames[c.why])
		}
	}
	// The fallbacks follow by load, at most max_endpoints of them.
	e := eps(5, 1, 3, 0)
	s.decide(e, choice{matched: 1, total: 1, prefixOwner: "c"})
	if got := string(s.endpointList(nil, e)); got != "c,d,b" {
		t.Errorf("endpoint list %q", got)
	}
	// Ties spread: equally loaded endpoints are all chosen for some rnd.
	seen := map[string]bool{}
	for rnd := range uint64(64) {
		e := eps(0, 0, 0)
		s.decide(e, choice{rnd: rnd * 0x9e3779b97f4a7c15})
		seen[e[0].addr] = true
	}
	if len(seen) != 3 {
		t.Errorf("ties went to %v only", seen)
	}
	// Among equal loads the instance's fewest recent picks win, whatever
	// rnd is.
	for rnd := range uint64(16) {
		e := eps(0, 0, 0, 1)
		e[0].picks, e[1].picks, e[2].picks, e[3].picks = 3, 1, 2, 0
		s.decide(e, choice{rnd: rnd * 0x9e3779b97f4a7c15})
		if got := string(s.endpointList(nil, e)); got != "b,c,a" {
			t.Fatalf("rnd %d: order %q, want b,c,a", rnd, got)
		}
	}
}

func TestPoolLoads(t *testing.T) {
	snap := `{"pools":{"a":{"endpoints":{"10.0.0.1:1":{"healthy":true,"in_flight":2,"queue_depth":3.5},` +
		`"10.0.0.2:1":{"healthy":false,"in_flight":0},"10.0.0.3:1":{"healthy":true,"in_flight":-1,"queue_depth":0}}},` +
		`"b":{"endpoints":{}}}}`
	name, got, _, err := poolLoads(nil, []byte(snap), "a")
	if err != nil || name != "a" || len(got) != 2 {
		t.Fatalf("%q %v %v", name, got, err)
	}
	for _, e := range got {
		if want := map[string]float64{"10.0.0.1:1": 5.5, "10.0.0.3:1": 0}[e.addr]; e.load != want {
			t.Errorf("%s load %v, want %v", e.addr, e.load, want)
		}
	}
	if name, _, _, err := poolLoads(nil, []byte(snap), ""); err != nil || name != "" {
		t.Errorf("two pools, none chosen: %q %v", name, err)
	}
	if name, got, _, _ := poolLoads(nil, []byte(`{"pools":{"only":{"endpoints":{"x:1":{"healthy":true}}}}}`), ""); name != "only" || len(got) != 1 {
		t.Errorf("single pool: %q %v", name, got)
	}
	if _, _, _, err := poolLoads(nil, []byte(`{"pools":{"a":{"endpoints":{"x:1":[}}}}`), "a"); err == nil {
		t.Error("bad endpoints accepted")
	}
	if _, _, _, err := poolLoads(nil, []byte(`{}`), ""); err == nil || !strings.Contains(err.Error(), "pools") {
		t.Errorf("no pools: %v", err)
	}
}

func TestParseConfig(t *testing.T) {
	s, err := parseConfig([]byte(`{"chunk_bytes":128,"block_ttl":"30s","balance_rel_threshold":2,"session_header":"X-Session","metrics_flush_period":"250ms"}`))
	if err != nil || s.chunk != 128 || s.ttl.Seconds() != 30 || s.relThreshold != 2 || s.sessionHeader != "x-session" || s.flushPeriod != 250*time.Millisecond {
		t.Fatalf("%+v %v", s, err)
	}
	if s, err := parseConfig(nil); err != nil || s.flushPeriod != time.Second {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	for cfg, want := range map[string]string{
		`{"chunk_bytes":8}`:              "chunk_bytes: 8 is not in 16..4096",
		`{"block_ttl":"1ms"}`:            `block_ttl: "1ms" is not a duration`,
		`{"cache_threshold":1.5}`:        "cache_threshold: 1.5 is not in 0..1",
		`{"balance_rel_threshold":0.5}`:  "balance_rel_threshold: 0.5 is not in 1..",
		`{"max_endpoints":17}`:           "max_endpoints: 17 is not in 1..16",
		`{"pool":"a/b"}`:                 "pool:",
		`{"session_header":"a b"}`:       "session_header:",
		`{"bogus":1}`:                    "bogus",
		`{"metrics_flush_period":"1ms"}`: `metrics_flush_period: "1ms" is not a duration in 10ms..1m`,
		`{"metrics_flush_period":"2m"}`:  `metrics_flush_period: "2m" is not`,
		`{"metrics_flush_period":"x"}`:   `metrics_flush_period: "x" is not`,
	} {
		if _, err := parseConfig([]byte(cfg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", cfg, err, want)
		}
	}
}

// TestDecideFewestStarts: a request that starts a prefix goes to the
// endpoint with the fewest prefixes started on it, among those not
// overloaded next to the least-loaded one; ties keep the load order; a
// request with a usable prefix ignores the counts.
func TestDecideFewestStarts(t *testing.T) {
	s, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		loads  []float64
		starts []float32
		c      choice
		want   string
	}{
		{"fewest starts, not least load", []float64{0, 3, 5}, []float32{4, 2, 1}, choice{total: 10}, "c"},
		{"ties go by load", []float64{4, 1, 2}, []float32{1, 1, 1}, choice{total: 10}, "b"},
		{"an overloaded endpoint is left out", []float64{0, 3, 60}, []float32{4, 2, 0}, choice{total: 10}, "b"},
		{"a usable prefix ignores the counts", []float64{0, 3, 5}, []float32{9, 9, 0}, choice{matched: 10, total: 10, prefixOwner: "a"}, "a"},
	} {
		e := eps(c.loads...)
		for i := range e {
			e[i].starts = c.starts[i]
		}
		s.decide(e, c.c)
		if e[0].addr != c.want {
			t.Errorf("%s: chose %s, want %s", c.name, e[0].addr, c.want)
		}
		if s.prefers(c.c) != (c.c.prefixOwner == "a") {
			t.Errorf("%s: prefers = %v", c.name, s.prefers(c.c))
		}
	}
}

// TestFollow: a lost claim follows the other instance's endpoint unless it
// is gone or overloaded next to the least-loaded one, keeping the others'
// order.
func TestFollow(t *testing.T) {
	s, err := parseConfig(nil) // abs 24, rel 1.5
	if err != nil {
		t.Fatal(err)
	}
	e := eps(3, 1, 10, 20)
	if !s.follow(e, "c") || e[0].addr != "c" || e[1].addr != "a" || e[2].addr != "b" || e[3].addr != "d" {
		t.Fatalf("follow c: %v", e)
	}
	if e := eps(3, 1); s.follow(e, "z") || e[0].addr != "a" {
		t.Fatalf("followed an endpoint not in the pool: %v", e)
	}
	if e := eps(40, 1, 2); s.follow(e, "a") || e[0].addr != "a" || e[1].addr != "b" {
		t.Fatalf("followed an overloaded endpoint (40 against 1), or reordered: %v", e)
	}
	if e := eps(20, 1, 2); !s.follow(e, "a") {
		t.Fatalf("did not follow an endpoint within the absolute threshold: %v", e)
	}
}
