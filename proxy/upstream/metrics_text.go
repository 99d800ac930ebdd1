package upstream

// MetricsText returns the Prometheus text exposition ep's engine answered
// at its last successful scrape (pools with metrics_path), or nil before
// one succeeded. The slice is shared and read-only: a scrape replaces it,
// never changes it, so it stays valid (and unchanged) for as long as the
// caller keeps it. Safe for concurrent use.
func (ep *Endpoint) MetricsText() []byte {
	if p := ep.metricsText.Load(); p != nil {
		return *p
	}
	return nil
}

// storeMetricsText keeps body, a successful scrape's exposition, for
// MetricsText. body must not be modified afterwards.
func (ep *Endpoint) storeMetricsText(body []byte) { ep.metricsText.Store(&body) }
