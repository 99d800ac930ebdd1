package upstreams

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse("p", []byte(`{"pools":{
		"a":{"policy":"least_queue","healthy":1,"total":2,"endpoints":{"127.0.0.1:1":{"healthy":true,"in_flight":2,"queue_depth":3,"kv_cache_usage":0.5},"127.0.0.1:2":{"healthy":false}}},
		"b":{"healthy":0,"total":1,"endpoints":{"127.0.0.1:3":{"healthy":false,"in_flight":3}}},
		"c":{"endpoints":{"127.0.0.1:4":{"healthy":true}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Pools["a"].Endpoints["127.0.0.1:1"], (Endpoint{true, 2, 3, 0.5}); got != want {
		t.Errorf("endpoint a/1 = %+v, want %+v", got, want)
	}
	if n := s.Pools["a"].Healthy; n != 1 {
		t.Errorf("pool a healthy = %d, want 1", n)
	}
	for pool, want := range map[string]bool{"a": true, "b": false, "c": true, "missing": false} {
		if got := s.Healthy(pool); got != want {
			t.Errorf("Healthy(%q) = %v, want %v", pool, got, want)
		}
	}
	for bad, why := range map[string]string{``: "unexpected end", `[]`: "cannot unmarshal array", `{}`: `no "pools" object`, `{"pools":[]}`: "cannot unmarshal array", `{"pools":null}`: `no "pools" object`} {
		_, err := Parse("plug", []byte(bad))
		if err == nil || !strings.HasPrefix(err.Error(), "plug: sluice.upstreams: ") || !strings.Contains(err.Error(), why) {
			t.Errorf("Parse(%q) = %v, want an error naming %q", bad, err, why)
		}
	}
}

// FuzzParse: any input either fails with an error naming the property or
// gives a snapshot with pools whose Healthy agrees with its endpoints.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"pools":{"a":{"healthy":1,"endpoints":{"x:1":{"healthy":true}}}}}`))
	f.Add([]byte(`{"pools":{"b":{"endpoints":{"x:1":{"healthy":false}}}}}`))
	f.Add([]byte(`{"pools":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: sluice.upstreams: ") {
				t.Fatalf("error %q does not name the property", err)
			}
			return
		}
		if s.Pools == nil {
			t.Fatalf("accepted %q without pools", data)
		}
		for name, p := range s.Pools {
			want := p.Healthy > 0
			for _, e := range p.Endpoints {
				want = want || e.Healthy
			}
			if s.Healthy(name) != want {
				t.Fatalf("%q: Healthy(%q) = %v, want %v", data, name, !want, want)
			}
		}
	})
}
