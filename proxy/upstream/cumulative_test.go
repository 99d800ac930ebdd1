package upstream

import (
	"bytes"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestCumulativeMetricsShared: pools built for the same Options.Cumulative
// (a reload) count into the same counters and histograms, by series name;
// their gauges stay in each Pools' own set; a series is in one set only.
func TestCumulativeMetricsShared(t *testing.T) {
	cum := metrics.NewSet()
	build := func(cfg *config.Config) *Pools {
		t.Helper()
		rc, err := cfg.Resolve()
		if err != nil {
			t.Fatal(err)
		}
		return New(rc, Options{Cumulative: cum})
	}
	const ep = "http://127.0.0.1:10001"
	old := build(config.New().WithUpstream("a", ep).WithUpstream("gone", "http://127.0.0.1:10002"))
	next := build(config.New().WithUpstream("a", ep))
	pa, na := old.ByName("a"), next.ByName("a")
	if pa.met.retries != na.met.retries || pa.met.queueWait != na.met.queueWait ||
		pa.endpoints[0].ejectTotal != na.endpoints[0].ejectTotal {
		t.Fatal("a reload's pool does not share the running pool's counters")
	}
	pa.met.retries.Inc() // the old generation counts after the swap
	var shared, gauges bytes.Buffer
	cum.WritePrometheus(&shared)
	next.Metrics().WritePrometheus(&gauges)
	for _, want := range []string{`sluice_upstream_retries_total{upstream="a"} 1`, `sluice_upstream_retries_total{upstream="gone"} 0`} {
		if !strings.Contains(shared.String(), want+"\n") {
			t.Errorf("shared set lacks %q:\n%s", want, shared.String())
		}
	}
	if g := gauges.String(); !strings.Contains(g, `sluice_upstream_healthy_endpoints{upstream="a"}`) ||
		strings.Contains(g, "gone") || strings.Contains(g, "_total") {
		t.Errorf("the new pools' own set holds more than their gauges:\n%s", g)
	}
}
