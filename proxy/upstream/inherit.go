package upstream

// InheritHealth seeds ps, built for a reload, with what the running pools
// old learned from their active health checks: an endpoint of ps whose
// pool (by name) has active checks and that old knows under the same
// address, and that old's checks marked down, starts out of rotation
// rather than optimistic as at start-up, so a reload does not send
// traffic to an endpoint known to be failing. ps's own checks bring it
// back once it passes healthy_threshold checks in a row.
//
// Passive ejections are not carried over: an ejection ends on its timer
// anyway, and the new pool ejects the endpoint again after
// consecutive_failures. Call InheritHealth before Start; it is not safe
// to call concurrently with ps's health checks.
func (ps *Pools) InheritHealth(old *Pools) {
	for _, p := range ps.list {
		op := old.m[p.name]
		if op == nil || p.health == nil {
			continue
		}
		for _, ep := range p.endpoints {
			i := op.EndpointIndex(ep.Addr)
			if i < 0 || !op.endpoints[i].FailsActiveChecks() {
				continue
			}
			ep.mu.Lock()
			ep.activeDown = true
			ep.updateLocked()
			ep.mu.Unlock()
		}
	}
}
