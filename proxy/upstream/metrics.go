package upstream

import (
	"strconv"

	"github.com/VictoriaMetrics/metrics"
)

// poolMetrics are a pool's counters, created with the pool.
type poolMetrics struct {
	retries       *metrics.Counter   // sluice_upstream_retries_total{upstream}
	saturated     *metrics.Counter   // sluice_upstream_rejected_total{upstream,reason="saturated"}
	queueTimeouts *metrics.Counter   // …{reason="queue_timeout"}
	noEndpoint    *metrics.Counter   // …{reason="no_endpoint"}
	queueWait     *metrics.Histogram // sluice_upstream_queue_wait_seconds{upstream}
}

// registerMetrics creates the pools' and endpoints' metrics in set, once,
// at start-up:
//
//	sluice_upstream_retries_total{upstream}
//	sluice_upstream_rejected_total{upstream,reason="saturated|queue_timeout|no_endpoint"}
//	sluice_upstream_queue_wait_seconds{upstream}            (histogram)
//	sluice_upstream_queued{upstream}                        (gauge)
//	sluice_upstream_healthy_endpoints{upstream}             (gauge)
//	sluice_endpoint_in_flight{upstream,endpoint}            (gauge)
//	sluice_endpoint_healthy{upstream,endpoint}              (gauge, 1 in rotation)
//	sluice_endpoint_ejections_total{upstream,endpoint}
//
// and, for pools with metrics_path, the scraped engine signals:
//
//	sluice_endpoint_queue_depth{upstream,endpoint}          (gauge)
//	sluice_endpoint_running{upstream,endpoint}              (gauge)
//	sluice_endpoint_kv_cache_usage{upstream,endpoint}       (gauge, 0-1)
//	sluice_endpoint_scrape_errors_total{upstream,endpoint}
func (ps *Pools) registerMetrics(set *metrics.Set) {
	for _, p := range ps.list {
		p := p
		l := `{upstream="` + escapeLabel(p.name) + `"`
		p.met = poolMetrics{
			retries:       set.NewCounter("sluice_upstream_retries_total" + l + "}"),
			saturated:     set.NewCounter("sluice_upstream_rejected_total" + l + `,reason="saturated"}`),
			queueTimeouts: set.NewCounter("sluice_upstream_rejected_total" + l + `,reason="queue_timeout"}`),
			noEndpoint:    set.NewCounter("sluice_upstream_rejected_total" + l + `,reason="no_endpoint"}`),
			queueWait:     set.NewHistogram("sluice_upstream_queue_wait_seconds" + l + "}"),
		}
		set.NewGauge("sluice_upstream_queued"+l+"}", func() float64 { return float64(p.queue.n.Load()) })
		set.NewGauge("sluice_upstream_healthy_endpoints"+l+"}", func() float64 { return float64(p.upCount.Load()) })
		for _, ep := range p.endpoints {
			ep := ep
			el := "{" + ep.label() + "}"
			set.NewGauge("sluice_endpoint_in_flight"+el, func() float64 { return float64(ep.inFlight.Load()) })
			set.NewGauge("sluice_endpoint_healthy"+el, func() float64 {
				if ep.up.Load() {
					return 1
				}
				return 0
			})
			ep.ejectTotal = set.NewCounter("sluice_endpoint_ejections_total" + el)
			if p.metricsPath == "" {
				continue
			}
			ep.scrapeErrors = set.NewCounter("sluice_endpoint_scrape_errors_total" + el)
			set.NewGauge("sluice_endpoint_queue_depth"+el, ep.QueueDepth)
			set.NewGauge("sluice_endpoint_running"+el, ep.Running)
			set.NewGauge("sluice_endpoint_kv_cache_usage"+el, ep.KVCacheUsage)
		}
	}
}

// escapeLabel escapes a Prometheus label value.
func escapeLabel(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
