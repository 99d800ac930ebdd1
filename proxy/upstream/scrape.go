package upstream

import (
	"math"
	"sync"
	"time"
)

// scrapeLoop reads ep's engine metrics every scrape interval until stop
// closes. The first scrape runs at once. A scrape bounded by the interval
// (so scrapes never pile up) that fails — no answer, a non-2xx status, a
// malformed exposition — keeps the last values and counts
// sluice_endpoint_scrape_errors_total: a stale queue depth is a better
// guess than none, and an endpoint that stopped answering is the health
// checks' and passive ejection's business.
func (ep *Endpoint) scrapeLoop(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	interval := ep.pool.scrapeInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ep.scrapeOnce(interval)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (ep *Endpoint) scrapeOnce(timeout time.Duration) {
	status, body, err := ep.ProbeGet(ep.pool.metricsPath, timeout)
	if err != nil || status < 200 || status > 299 {
		ep.scrapeFailed()
		return
	}
	load, err := parseEngineMetrics(body)
	if err != nil {
		ep.scrapeFailed()
		return
	}
	ep.storeLoad(load)
	ep.storeMetricsText(body)
}

func (ep *Endpoint) scrapeFailed() {
	ep.scrapeOK.Store(false)
	ep.scrapeErrors.Inc()
}

// storeLoad publishes a scrape's signals; absent signals read as 0.
func (ep *Endpoint) storeLoad(l engineLoad) {
	ep.waiting.Store(math.Float64bits(l.Waiting))
	ep.running.Store(math.Float64bits(l.Running))
	ep.kvUsage.Store(math.Float64bits(l.KVCacheUsage))
	ep.scrapeOK.Store(true)
	// A shorter queue elsewhere does not free a slot, so there is nobody
	// to wake here.
}
