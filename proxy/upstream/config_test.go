package upstream

import (
	"os"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestPoolsFromConfig builds pools from config/testdata/upstreams.yaml.
func TestPoolsFromConfig(t *testing.T) {
	b, err := os.ReadFile("../config/testdata/upstreams.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := newPools(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	p := ps.ByName("llama")
	if p.maxBatch != 4 || p.policy != lbLeastQueue || p.retries != 0 || p.health.Path != "/healthz" || p.scrapeInterval != 250*time.Millisecond {
		t.Fatalf("compiled pool %+v", p)
	}
	if ps.ByName("mistral").maxBatch != 8 || !ps.ByName("mistral").anyModel {
		t.Fatal("mistral pool: top-level max_batch_size or '*' not applied")
	}
	if !p.Serves([]byte("llama")) || !p.Serves([]byte("llama-3-8b")) || p.Serves([]byte("mistral-7b")) {
		t.Fatal("llama pool serves the wrong models")
	}
}

func TestEjectionFor(t *testing.T) {
	e := config.PassiveEjectionConfig{BaseEjection: config.Duration(time.Second), MaxEjection: config.Duration(30 * time.Second)}
	for k, want := range map[int32]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		if got := ejectionFor(e, k); got != want {
			t.Errorf("ejection %d: %s, want %s", k, got, want)
		}
	}
}

func TestBuildSchedule(t *testing.T) {
	count := func(s []uint32) map[uint32]int {
		m := map[uint32]int{}
		for _, i := range s {
			m[i]++
		}
		return m
	}
	if s := buildSchedule([]int{1, 1, 1}); len(s) != 3 {
		t.Fatalf("equal weights: %v", s)
	}
	s := buildSchedule([]int{6, 2})
	if len(s) != 4 || count(s)[0] != 3 || count(s)[1] != 1 {
		t.Fatalf("6:2 reduced by the gcd to 3:1, got %v", s)
	}
	// Smooth: the heavy endpoint's turns are spread, not bunched.
	s = buildSchedule([]int{5, 1, 1})
	if len(s) != 7 || s[0] != 0 || s[1] == s[2] && s[1] != 0 {
		t.Fatalf("5:1:1 schedule %v", s)
	}
	for i := 1; i < len(s); i++ {
		if s[i] != 0 && s[i-1] != 0 {
			t.Fatalf("light endpoints back to back in %v", s)
		}
	}
}
