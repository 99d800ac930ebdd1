package wasm

import (
	"context"
	"fmt"
	"time"
)

// The instance pool's lifecycle: a plugin keeps its slots filled and one
// started spare instance ready, so that a discarded instance is replaced
// at once and a request that arrives after a failure never fails, or
// skips the plugin, because of it (issue 10 item 2). See RATIONALE.md,
// "One spare instance; only requests in flight are stranded".
//
// Plugin.poolMu guards Plugin.spare, refilling, shut and ready, and every
// instance's slot field. Lock order: an instance's mu, then poolMu (retire
// calls replace with the failed instance's mu held); poolMu is never held
// while taking an instance's mu or calling into a guest.

// Backoff between attempts to build an instance after one failed.
const (
	minReplaceBackoff = 50 * time.Millisecond
	maxReplaceBackoff = 5 * time.Second
)

// replace takes the dead instance old out of service: the spare, if one is
// ready, takes its slot at once; old is closed once its failing call has
// returned, and a background goroutine rebuilds what is missing (an empty
// slot, the spare). It is called with old.mu held.
func (p *Plugin) replace(old *instance) {
	var promoted *instance
	p.poolMu.Lock()
	if old.slot < 0 {
		if p.spare == old {
			p.spare = nil
		}
	} else if sl := &p.slots[old.slot]; sl.inst.Load() == old {
		if sp := p.spare; sp != nil && !sp.dead.Load() && !p.shut {
			p.spare = nil
			sp.slot = old.slot
			sl.inst.Store(sp)
			promoted = sp
			p.signalReadyLocked()
		} else {
			sl.inst.Store(nil)
		}
	}
	p.poolMu.Unlock()
	if promoted != nil {
		p.metrics.restarts.Inc()
		promoted.published()
	}
	p.log.Warn("wasm: plugin instance discarded",
		"reason", old.deathReason, "requests_in_flight", len(old.streams), "spare_promoted", promoted != nil)
	closeOld := func() {
		old.mu.Lock() // wait until the failing call has returned
		old.mu.Unlock()
		old.close()
	}
	if !p.goTracked(closeOld) {
		go closeOld()
	}
	p.refill()
}

// refill starts the goroutine that rebuilds missing instances, unless it
// runs already or the plugin is closing.
func (p *Plugin) refill() {
	p.poolMu.Lock()
	if p.refilling || p.shut {
		p.poolMu.Unlock()
		return
	}
	p.refilling = true
	p.poolMu.Unlock()
	if !p.goTracked(p.refillLoop) {
		p.poolMu.Lock()
		p.refilling = false
		p.poolMu.Unlock()
	}
}

// refillLoop builds instances until every slot holds one and a spare is
// ready, retrying with backoff when building fails.
func (p *Plugin) refillLoop() {
	backoff := minReplaceBackoff
	for {
		p.poolMu.Lock()
		if p.shut || p.closing() || !p.missingLocked() {
			p.refilling = false
			p.poolMu.Unlock()
			return
		}
		p.poolMu.Unlock()
		in, err := p.newInstance(context.Background(), -1)
		if err != nil {
			p.log.Error("wasm: cannot build a plugin instance", "error", err, "retry_in", backoff)
			select {
			case <-p.done:
				p.poolMu.Lock()
				p.refilling = false
				p.poolMu.Unlock()
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxReplaceBackoff)
			continue
		}
		backoff = minReplaceBackoff
		if !p.place(in) {
			in.kill(ReasonClosed)
		}
	}
}

// missingLocked reports whether a slot is empty or the spare is missing.
func (p *Plugin) missingLocked() bool {
	if p.spare == nil {
		return true
	}
	for i := range p.slots {
		if p.slots[i].inst.Load() == nil {
			return true
		}
	}
	return false
}

// place puts a new instance in the first empty slot, or makes it the
// spare. It reports false when the instance is not needed (or died while
// it was unplaced, or the plugin is closing): the caller closes it.
func (p *Plugin) place(in *instance) bool {
	p.poolMu.Lock()
	if p.shut || in.dead.Load() {
		p.poolMu.Unlock()
		return false
	}
	for i := range p.slots {
		if p.slots[i].inst.Load() == nil {
			in.slot = i
			p.slots[i].inst.Store(in)
			p.signalReadyLocked()
			p.poolMu.Unlock()
			p.metrics.restarts.Inc()
			in.published()
			return true
		}
	}
	if p.spare == nil {
		in.slot = -1
		p.spare = in
		p.poolMu.Unlock()
		return true
	}
	p.poolMu.Unlock()
	return false
}

// signalReadyLocked wakes the requests waiting for a live instance
// (waitReady).
func (p *Plugin) signalReadyLocked() {
	close(p.ready)
	p.ready = make(chan struct{})
}

// waitReady waits, when no slot holds a live instance, until one does, the
// plugin closes, or until deadline (set on the first wait of a request to
// now + the host's start timeout: how long building an instance may
// take). It reports whether the caller should pick again.
func (p *Plugin) waitReady(deadline *time.Time) bool {
	p.poolMu.Lock()
	if p.shut {
		p.poolMu.Unlock()
		return false
	}
	for i := range p.slots {
		if in := p.slots[i].inst.Load(); in != nil && !in.dead.Load() {
			p.poolMu.Unlock()
			return true
		}
	}
	ch := p.ready
	p.poolMu.Unlock()
	if deadline.IsZero() {
		*deadline = time.Now().Add(p.host.startTimeout)
	}
	d := time.Until(*deadline)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-p.done:
		return false
	case <-t.C:
		return false
	}
}

// closeInstances kills and closes every instance in the slots and the
// spare; nothing is placed after it.
func (p *Plugin) closeInstances() {
	p.poolMu.Lock()
	p.shut = true
	ins := make([]*instance, 0, len(p.slots)+1)
	for i := range p.slots {
		if in := p.slots[i].inst.Swap(nil); in != nil {
			ins = append(ins, in)
		}
	}
	if p.spare != nil {
		ins = append(ins, p.spare)
		p.spare = nil
	}
	p.poolMu.Unlock()
	for _, in := range ins {
		in.kill(ReasonClosed)
	}
}

// kill marks an instance that is out of the pool (or being taken out of
// it) dead for reason, stops its asynchronous work and closes it.
func (in *instance) kill(reason string) {
	in.mu.Lock()
	in.strand(reason)
	in.stopAsync()
	in.mu.Unlock()
	in.close()
}

// strand marks the instance dead for reason, unless it is dead already,
// and counts the requests paused on it as stranded: nothing will resume
// them (its HTTP calls are cancelled, it gets no ticks), so each is ended
// at once with Exchange.Fail and gets the plugin's failure policy, rather
// than waiting out the proxy's timeout. It reports whether it marked the
// instance. in.mu must be held (so every stream in in.streams is a live
// request: OnDone removes it under in.mu).
func (in *instance) strand(reason string) bool {
	if in.dead.Swap(true) {
		return false
	}
	in.deathReason = reason
	for _, s := range in.streams {
		if s.awaiting {
			in.stranded(s)
			s.ex.Fail(fmt.Errorf("wasm: plugin %q: the instance holding this paused request was discarded (%s)", in.p.name, reason))
		}
	}
	return true
}

// stranded counts s, a request on this dead instance that still needed
// the guest, once. in.mu must be held.
func (in *instance) stranded(s *stream) {
	if s.stranded {
		return
	}
	s.stranded = true
	in.p.metrics.strandedOf(in.deathReason).Inc()
}
