package upstream

import (
	"strconv"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/exposition"
)

func init() {
	exposition.Describe(map[string]string{
		"sluice_upstream_retries_total":       "Requests retried on another endpoint of the pool before the first response byte.",
		"sluice_upstream_rejected_total":      "Requests the pool could not place, by reason: saturated (429, every endpoint at max_batch_size), queue_timeout (503), no_endpoint (503).",
		"sluice_upstream_queue_wait_seconds":  "Histogram of the time requests waited in the pool's queue for an endpoint slot, in seconds.",
		"sluice_upstream_queued":              "Requests waiting in the pool's queue now.",
		"sluice_upstream_healthy_endpoints":   "Endpoints of the pool in rotation now.",
		"sluice_endpoint_in_flight":           "Requests Sluice has in flight to the endpoint now.",
		"sluice_endpoint_healthy":             "1 when the endpoint is in rotation (healthy, not ejected), else 0.",
		"sluice_endpoint_ejections_total":     "Times the endpoint was taken out of rotation after consecutive failures.",
		"sluice_endpoint_scrape_errors_total": "Failed scrapes of the endpoint's engine metrics (metrics_path).",
		"sluice_endpoint_queue_depth":         "Requests waiting in the engine's own queue, from its last scrape (vLLM num_requests_waiting, TGI queue size, SGLang num_queue_reqs).",
		"sluice_endpoint_running":             "Requests the engine is running, from its last scrape (vLLM num_requests_running, TGI batch size, SGLang num_running_reqs).",
		"sluice_endpoint_kv_cache_usage":      "Share of the engine's KV cache in use, 0 to 1, from its last scrape.",
	})
}

// poolMetrics are a pool's counters, created with the pool.
type poolMetrics struct {
	retries       *metrics.Counter             // sluice_upstream_retries_total{upstream}
	saturated     *metrics.Counter             // sluice_upstream_rejected_total{upstream,reason="saturated"}
	queueTimeouts *metrics.Counter             // …{reason="queue_timeout"}
	noEndpoint    *metrics.Counter             // …{reason="no_endpoint"}
	queueWait     *metrics.PrometheusHistogram // sluice_upstream_queue_wait_seconds{upstream}
}

// registerMetrics creates the pools' and endpoints' metrics, once, at
// start-up: the gauges, which read this Pools' state, in set; the
// counters and histograms found or created in cum (see
// Options.Cumulative; cum may be set):
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
func (ps *Pools) registerMetrics(set, cum *metrics.Set) {
	for _, p := range ps.list {
		p := p
		l := `{upstream="` + escapeLabel(p.name) + `"`
		p.met = poolMetrics{
			retries:       cum.GetOrCreateCounter("sluice_upstream_retries_total" + l + "}"),
			saturated:     cum.GetOrCreateCounter("sluice_upstream_rejected_total" + l + `,reason="saturated"}`),
			queueTimeouts: cum.GetOrCreateCounter("sluice_upstream_rejected_total" + l + `,reason="queue_timeout"}`),
			noEndpoint:    cum.GetOrCreateCounter("sluice_upstream_rejected_total" + l + `,reason="no_endpoint"}`),
			queueWait:     cum.GetOrCreatePrometheusHistogramExt("sluice_upstream_queue_wait_seconds"+l+"}", exposition.LatencyBuckets),
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
			ep.ejectTotal = cum.GetOrCreateCounter("sluice_endpoint_ejections_total" + el)
			if p.metricsPath == "" {
				continue
			}
			ep.scrapeErrors = cum.GetOrCreateCounter("sluice_endpoint_scrape_errors_total" + el)
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
