package main

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
	"github.com/sluice-proxy/sluice/plugins/internal/upstreams"
)

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		in   string
		want picker
	}{
		{``, picker{wq: 1, wi: 1, wkv: 10, maxEndpoints: 3}},
		{`{}`, picker{wq: 1, wi: 1, wkv: 10, maxEndpoints: 3}},
		{`{"pool": "vllm", "weights": {"kv_cache_usage": 0, "queue_depth": 2.5}, "max_endpoints": 1}`,
			picker{pool: "vllm", wq: 2.5, wi: 1, wkv: 0, maxEndpoints: 1}},
	} {
		p, err := parseConfig([]byte(c.in))
		if err != nil {
			t.Fatalf("parseConfig(%s): %v", c.in, err)
		}
		if *p != c.want {
			t.Errorf("parseConfig(%s) = %+v, want %+v", c.in, *p, c.want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"pool": `, "queuepicker: invalid JSON configuration"},
		{`{"weight": {}}`, `unknown field "weight"`},
		{`{} {}`, "unexpected data after the top-level object"},
		{`{"weights": {"in_flight": -1}}`, "queuepicker: weights.in_flight: -1 is not in 0..1000000"},
		{`{"weights": {"kv_cache_usage": 1e7}}`, "queuepicker: weights.kv_cache_usage: 1e+07 is not in"},
		{`{"max_endpoints": 17}`, "queuepicker: max_endpoints: 17 is not in 1..16"},
		{`{"max_endpoints": -1}`, "queuepicker: max_endpoints: -1 is not in 1..16"},
		{`{"pool": "a\nb"}`, "queuepicker: pool:"},
	} {
		_, err := parseConfig([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

const snapshotJSON = `{"pools":{
 "vllm":{"policy":"least_queue","healthy":3,"total":4,"max_in_flight":32,"queued":0,"endpoints":{
  "10.0.0.1:8000":{"healthy":true,"ejected":false,"weight":1,"in_flight":4,"queue_depth":2,"running":4,"kv_cache_usage":0.5},
  "10.0.0.2:8000":{"healthy":true,"ejected":false,"weight":1,"in_flight":1,"queue_depth":0,"running":1,"kv_cache_usage":0.2},
  "10.0.0.3:8000":{"healthy":false,"ejected":true,"weight":1,"in_flight":0,"queue_depth":0,"running":0,"kv_cache_usage":0},
  "10.0.0.4:8000":{"healthy":true,"ejected":false,"weight":1,"in_flight":2,"queue_depth":1,"running":2,"kv_cache_usage":0.9}}},
 "tgi":{"healthy":1,"total":1,"endpoints":{"10.0.1.1:80":{"healthy":true,"in_flight":0,"queue_depth":0,"kv_cache_usage":0}}}}}`

func TestPick(t *testing.T) {
	s, err := upstreams.Parse("queuepicker", []byte(snapshotJSON))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := parseConfig(nil)
	// Scores: .1 → 2+4+5 = 11, .2 → 0+1+2 = 3, .4 → 1+2+9 = 12; .3 is down.
	if got := p.pick(s, "vllm", 0); got != "10.0.0.2:8000,10.0.0.1:8000,10.0.0.4:8000" {
		t.Errorf("pick = %q", got)
	}
	p.maxEndpoints = 1
	if got := p.pick(s, "vllm", 0); got != "10.0.0.2:8000" {
		t.Errorf("pick one = %q", got)
	}
	// Without the KV-cache weight, .4 (score 3) beats .1 (score 6).
	p.maxEndpoints, p.wkv = 3, 0
	if got := p.pick(s, "vllm", 0); got != "10.0.0.2:8000,10.0.0.4:8000,10.0.0.1:8000" {
		t.Errorf("pick without kv = %q", got)
	}
	if got := p.pick(s, "missing", 0); got != "" {
		t.Errorf("pick in an unknown pool = %q", got)
	}
}

func TestPickTies(t *testing.T) {
	s, err := upstreams.Parse("queuepicker", []byte(`{"pools":{"p":{"endpoints":{"a:1":{"healthy":true},"b:1":{"healthy":true},"c:1":{"healthy":true}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := parseConfig([]byte(`{"max_endpoints": 1}`))
	first := map[string]int{}
	for rnd := range uint64(300) {
		first[p.pick(s, "p", rnd*0x9E3779B97F4A7C15)]++
	}
	for _, ep := range []string{"a:1", "b:1", "c:1"} {
		if first[ep] < 50 {
			t.Errorf("equally loaded endpoints: first choices %v; %s is starved", first, ep)
		}
	}
}

func TestPoolFor(t *testing.T) {
	s, _ := upstreams.Parse("queuepicker", []byte(snapshotJSON))
	one, _ := upstreams.Parse("queuepicker", []byte(`{"pools":{"only":{"endpoints":{}}}}`))
	p, _ := parseConfig(nil)
	if got := p.poolFor("tgi", s); got != "tgi" {
		t.Errorf("chosen pool: %q", got)
	}
	if got := p.poolFor("", s); got != "" {
		t.Errorf("no choice among two pools: %q", got)
	}
	if got := p.poolFor("", one); got != "only" {
		t.Errorf("single pool: %q", got)
	}
	p.pool = "vllm"
	if got := p.poolFor("", s); got != "vllm" {
		t.Errorf("configured pool: %q", got)
	}
}

func TestScoreCleansInputs(t *testing.T) {
	p, _ := parseConfig(nil)
	if got := p.score(upstreams.Load{QueueDepth: -5, InFlight: 2, KVCacheUsage: 0.5}); got != 7 {
		t.Errorf("score = %v, want 7", got)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{``, `{"weights":{"in_flight":0.5}}`, `{"max_endpoints":16,"pool":"x"}`} {
		f.Add([]byte(s))
	}
	configtest.Fuzz(f, "queuepicker: ", parseConfig, func(t *testing.T, data []byte, p *picker) {
		if p.maxEndpoints < 1 || p.maxEndpoints > maxEndpointsLimit || !(p.wq >= 0) || !(p.wi >= 0) || !(p.wkv >= 0) {
			t.Fatalf("accepted %q as %+v", data, p)
		}
	})
}

// FuzzPick checks that any snapshot the parser accepts yields a list of
// distinct healthy endpoints of the pool, best first.
func FuzzPick(f *testing.F) {
	f.Add([]byte(snapshotJSON), "vllm", uint64(1))
	f.Add([]byte(`{"pools":{"p":{"endpoints":{"a,b:1":{"healthy":true},"":{"healthy":true}}}}}`), "p", uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, pool string, rnd uint64) {
		s, err := upstreams.Parse("queuepicker", data)
		if err != nil {
			return
		}
		p, _ := parseConfig(nil)
		list := p.pick(s, pool, rnd)
		if list == "" {
			return
		}
		seen := map[string]bool{}
		prev := -1.0
		for _, addr := range strings.Split(list, ",") {
			e, ok := s.Pools[pool].Endpoints[addr]
			if !ok || !e.Healthy || seen[addr] {
				t.Fatalf("list %q has %q: in pool %v, healthy %v, repeated %v", list, addr, ok, e.Healthy, seen[addr])
			}
			seen[addr] = true
			if sc := p.score(upstreams.Load{InFlight: e.InFlight, QueueDepth: e.QueueDepth, KVCacheUsage: e.KVCacheUsage}); sc < prev {
				t.Fatalf("list %q is not sorted by score", list)
			} else {
				prev = sc
			}
		}
		if len(seen) > p.maxEndpoints {
			t.Fatalf("list %q longer than %d", list, p.maxEndpoints)
		}
	})
}
