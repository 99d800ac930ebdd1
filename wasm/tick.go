package wasm

import (
	"time"
)

// Ticks. proxy_set_tick_period_milliseconds records the period on the
// calling instance; one driver goroutine per plugin calls proxy_on_tick on
// the root context once per period, on one instance at a time, taking
// turns among the live instances that asked for ticks. A tick-driven
// plugin therefore acts once per period, not once per instance, and every
// instance still gets ticks (every N periods with N such instances) to
// resume the requests pinned to it. See RATIONALE.md.

// tickState is a plugin's tick driver. Guarded by mu.
type tickState struct {
	running bool
	wake    chan struct{} // buffered 1: a period changed
	next    uint32        // rotation position over the slots
}

// setTickPeriod implements proxy_set_tick_period_milliseconds for in: d 0
// takes the instance out of the rotation. in.mu must be held.
func (in *instance) setTickPeriod(d time.Duration) {
	if in.fns[cbTick] == nil {
		d = 0 // nothing to call: never pick this instance
	}
	in.tickPeriod.Store(int64(d))
	if d > 0 {
		in.p.kickTicker()
	}
}

// published is called once a new instance is in its slot: if its start-up
// asked for ticks, the driver (which only sees instances in slots) must
// know.
func (in *instance) published() {
	if in.tickPeriod.Load() > 0 {
		in.p.kickTicker()
	}
}

// kickTicker starts the plugin's tick driver, or tells the running one
// that a period changed.
func (p *Plugin) kickTicker() {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	if p.tick.running {
		select {
		case p.tick.wake <- struct{}{}:
		default:
		}
		return
	}
	if p.goTracked(p.tickLoop) {
		p.tick.running = true
	}
}

// tickPeriod is the shortest period asked for by a live instance, or 0.
func (p *Plugin) tickPeriod() time.Duration {
	var d time.Duration
	for i := range p.slots {
		in := p.slots[i].inst.Load()
		if in == nil || in.dead.Load() {
			continue
		}
		if v := time.Duration(in.tickPeriod.Load()); v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	return d
}

// nextTicker returns the next live instance in the rotation that asked for
// ticks, or nil.
func (p *Plugin) nextTicker() *instance {
	n := uint32(len(p.slots))
	for range n {
		p.tick.next++
		in := p.slots[p.tick.next%n].inst.Load()
		if in != nil && !in.dead.Load() && in.tickPeriod.Load() > 0 {
			return in
		}
	}
	return nil
}

// tickLoop is the plugin's tick driver. It exits when the plugin closes or
// no live instance wants ticks any more (a later
// proxy_set_tick_period_milliseconds starts it again).
func (p *Plugin) tickLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		d := p.tickPeriod()
		if d == 0 {
			p.tickMu.Lock()
			if d = p.tickPeriod(); d == 0 {
				p.tick.running = false
				p.tickMu.Unlock()
				return
			}
			p.tickMu.Unlock()
		}
		t.Reset(d)
		select {
		case <-p.done:
			return
		case <-p.tick.wake:
			t.Stop() // Go >= 1.23: Reset never delivers a stale tick
			continue
		case <-t.C:
		}
		in := p.nextTicker() // only this goroutine touches tick.next
		if in == nil {
			continue
		}
		in.mu.Lock()
		if in.dead.Load() || in.tickPeriod.Load() == 0 {
			in.mu.Unlock()
			continue
		}
		_, err := in.call(cbTick, nil, rootContextID, 0, 0, p.callTimeout)
		in.mu.Unlock()
		if err != nil {
			p.log.Warn("wasm: proxy_on_tick failed", "error", err)
		}
	}
}
