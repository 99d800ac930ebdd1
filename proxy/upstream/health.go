package upstream

import (
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// Endpoint health. An endpoint is in rotation ("healthy" in /health, the
// metrics and AppendUpstreamsJSON) unless active checks marked it down or
// passive ejection took it out. Both start optimistic: every endpoint is
// in rotation at start-up, and the first active check runs at once.
//
// Transitions are rare and take the endpoint's mutex; the request path
// reads only the atomic ep.up and the pool's atomic count of endpoints in
// rotation.

// updateLocked recomputes whether ep is in rotation; ep.mu is held. It
// reports whether ep just came back (capacity appeared).
func (ep *Endpoint) updateLocked() (cameBack bool) {
	up := !ep.activeDown && !ep.ejected.Load()
	if up == ep.up.Load() {
		return false
	}
	ep.up.Store(up)
	if up {
		ep.pool.upCount.Add(1)
	} else {
		ep.pool.upCount.Add(-1)
	}
	ep.pool.ps.notifyAvailability()
	return up
}

// notifyAvailability tells OnAvailability whether any endpoint is in
// rotation. The lock orders concurrent transitions so the last word is
// always right.
func (ps *Pools) notifyAvailability() {
	if ps.onAvailability == nil {
		return
	}
	ps.availMu.Lock()
	defer ps.availMu.Unlock()
	total := int32(0)
	for _, p := range ps.list {
		total += p.upCount.Load()
	}
	ps.onAvailability(total > 0)
}

// setActive records an active health check verdict.
func (ep *Endpoint) SetActive(healthy bool) {
	ep.mu.Lock()
	if ep.closed || ep.activeDown == !healthy {
		ep.mu.Unlock()
		return
	}
	ep.activeDown = !healthy
	back := ep.updateLocked()
	ep.mu.Unlock()
	if healthy {
		ep.pool.ps.log.Info("proxy: endpoint passes its health checks", "upstream", ep.pool.name, "endpoint", ep.Addr)
	} else {
		ep.pool.ps.log.Warn("proxy: endpoint fails its health checks", "upstream", ep.pool.name, "endpoint", ep.Addr)
	}
	if back {
		ep.pool.kick()
	}
}

// healthLoop runs the active checks of one endpoint until stop closes:
// one at once, then one per interval.
func (ep *Endpoint) healthLoop(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	h := ep.pool.health
	t := time.NewTicker(time.Duration(h.Interval))
	defer t.Stop()
	okRun, failRun := 0, 0
	for {
		status, _, err := ep.ProbeGet(h.Path, time.Duration(h.Timeout))
		if err == nil && status >= 200 && status < 300 {
			okRun, failRun = okRun+1, 0
			if okRun >= h.HealthyThreshold {
				ep.SetActive(true)
			}
		} else {
			okRun, failRun = 0, failRun+1
			if failRun >= h.UnhealthyThreshold {
				ep.SetActive(false)
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// Passive ejection: recordFailure and recordSuccess are called on the
// request path for each answer (or its absence) from ep.

// recordFailure counts a connection error, reset, timeout or 5xx answer;
// the ConsecutiveFailures-th in a row ejects ep. Failures while ep is
// ejected (requests already in flight, or panic mode) do not count.
func (ep *Endpoint) RecordFailure() {
	limit := ep.pool.ejection.ConsecutiveFailures
	if limit <= 0 || ep.ejected.Load() {
		return
	}
	if int(ep.fails.Add(1)) == limit {
		ep.eject()
	}
}

// recordSuccess resets the failure count and the ejection backoff. It
// writes only when there is something to reset, so the common case costs
// two loads.
func (ep *Endpoint) RecordSuccess() {
	if ep.fails.Load() != 0 {
		ep.fails.Store(0)
	}
	if ep.ejections.Load() != 0 {
		ep.ejections.Store(0)
	}
}

// ejectionFor returns the length of the k-th consecutive ejection (k >=
// 1): base doubled k-1 times, at most max.
func ejectionFor(e config.PassiveEjectionConfig, k int32) time.Duration {
	d, limit := time.Duration(e.BaseEjection), time.Duration(e.MaxEjection)
	for i := int32(1); i < k && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// eject takes ep out of rotation for the current backoff; a timer puts it
// back.
func (ep *Endpoint) eject() {
	ep.mu.Lock()
	if ep.closed || ep.ejected.Load() {
		ep.mu.Unlock()
		return
	}
	k := ep.ejections.Add(1)
	d := ejectionFor(ep.pool.ejection, k)
	ep.ejected.Store(true)
	ep.fails.Store(0)
	ep.updateLocked()
	ep.ejectTimer = time.AfterFunc(d, ep.unEject)
	ep.mu.Unlock()
	ep.ejectTotal.Inc()
	ep.pool.ps.log.Warn("proxy: endpoint ejected after consecutive failures", "upstream", ep.pool.name,
		"endpoint", ep.Addr, "failures", ep.pool.ejection.ConsecutiveFailures, "for", d)
}

// unEject puts ep back into rotation when its ejection ends.
func (ep *Endpoint) unEject() {
	ep.mu.Lock()
	if ep.closed || !ep.ejected.Load() {
		ep.mu.Unlock()
		return
	}
	ep.ejected.Store(false)
	ep.ejectTimer = nil
	back := ep.updateLocked()
	ep.mu.Unlock()
	if back {
		ep.pool.kick()
	}
}
