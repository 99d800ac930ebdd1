package upstream

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestInheritHealth: a reload's new pools start with the endpoints the
// running pools' active checks marked down out of rotation, matched by
// pool name and address; an endpoint of a pool without active checks, or
// of another pool, starts in rotation as at start-up.
func TestInheritHealth(t *testing.T) {
	hc := &config.HealthCheckConfig{}
	build := func(health *config.HealthCheckConfig) *Pools {
		t.Helper()
		cfg := config.New().
			WithUpstreamConfig(config.UpstreamConfig{Name: "a", Endpoints: []string{"http://10.0.0.1:8000", "http://10.0.0.2:8000"}, HealthCheck: health}).
			WithUpstreamConfig(config.UpstreamConfig{Name: "b", Endpoints: []string{"http://10.0.0.1:8000"}, HealthCheck: health})
		ps, err := newPools(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ps.Close)
		return ps
	}
	old := build(hc)
	old.ByName("a").Endpoints()[0].SetActive(false)

	next := build(hc)
	next.InheritHealth(old)
	a := next.ByName("a")
	if ep := a.Endpoints()[0]; ep.Up() || !ep.FailsActiveChecks() {
		t.Fatal("the endpoint failing its checks came back into rotation on reload")
	}
	if !a.Endpoints()[1].Up() || a.Healthy() != 1 {
		t.Fatalf("pool a: %d healthy, want 1", a.Healthy())
	}
	if !next.ByName("b").Endpoints()[0].Up() {
		t.Fatal("the same address in another pool inherited pool a's verdict")
	}

	unchecked := build(nil)
	unchecked.InheritHealth(old)
	if !unchecked.ByName("a").Endpoints()[0].Up() {
		t.Fatal("a pool without active checks inherited a verdict nothing would ever clear")
	}
}
