package proxy

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// TestReloadKeepsCumulativeMetrics: counters and histograms keep counting
// across a reload (N requests, reload, M requests: N+M); a stream that
// finishes on the old generation after the swap is counted too; the pool
// the reload removed keeps its counters, frozen, while its gauges (read
// from the retired generation's pools) leave the scrape; no series is
// written twice.
func TestReloadKeepsCumulativeMetrics(t *testing.T) {
	held := startHoldUpstream(t)
	b := startUpstream(t, proxytest.Options{Name: "b"})
	onRetire, retired := retireSignal()
	first := reloadConfig(b.URL).WithUpstream("gone", held.URL).
		WithRoute(RouteMatch{PathPrefix: "/stream"}, "gone").
		WithRoute(RouteMatch{}, "default")
	p := startProxy(t, first, Options{OnRetire: onRetire})
	const n, m = 3, 2
	for range n {
		upstreamName(t, p)
	}
	stream := postHeld(t, p, held)
	if err := p.Reload(reloadConfig(b.URL), quiet(nil)); err != nil {
		t.Fatal(err)
	}
	for range m {
		upstreamName(t, p)
	}
	want := func(series string, v float64) {
		t.Helper()
		if got := metricValue(t, p, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	want(`sluice_responses_total{code="200"}`, n+m)
	want(`sluice_request_duration_seconds_count`, n+m)
	want(`sluice_upstream_requests_total{upstream="default",code="200"}`, n+m)
	want(`sluice_upstream_healthy_endpoints{upstream="default"}`, 1)
	want(`sluice_upstream_healthy_endpoints{upstream="gone"}`, -1) // absent: a gauge of the old generation

	// The stream ends on the old generation, after the swap.
	endOnOld(t, held, stream, retired)
	want(`sluice_responses_total{code="200"}`, n+m+1)
	want(`sluice_request_duration_seconds_count`, n+m+1)
	want(`sluice_upstream_requests_total{upstream="gone",code="200"}`, 1) // frozen until a restart
	want(`sluice_upstream_rejected_total{upstream="gone",reason="saturated"}`, 0)
	want(`sluice_upstream_healthy_endpoints{upstream="gone"}`, -1)
	checkNoDuplicateSeries(t, metricsText(t, p))
	checkSlotsFree(t, p.Router())
}

// checkNoDuplicateSeries fails t for a series written twice in a scrape
// (Prometheus refuses such a scrape).
func checkNoDuplicateSeries(t *testing.T, scrape string) {
	t.Helper()
	seen := map[string]bool{}
	for _, l := range strings.Split(scrape, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		series := l[:strings.LastIndexByte(l, ' ')]
		if seen[series] {
			t.Errorf("series %s written twice", series)
		}
		seen[series] = true
	}
}
