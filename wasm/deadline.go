package wasm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// deadline bounds the calls into one instance, one call at a time, by the
// CPU time the calling thread spends in them rather than by wall-clock
// time.
//
// A wall-clock bound misfires under load: with GOMAXPROCS=1 and hundreds
// of goroutines, a callback that is preempted at a host call (GC, sysmon)
// waits behind every runnable goroutine, and an OS that deschedules the
// thread stretches it further, so a 50 µs callback can take 10–40 ms of
// wall time; the instance was then discarded as a runaway, failing every
// request pinned to it. So the budget is CPU time, counted only for the
// calls that need it: when the budget has passed in wall time, the timer
// asks the call to count (wantClock). The guest calls sluice.yield every
// yieldEvery loop iterations (see addStopChecks); at the first yield after
// the request, the calling goroutine locks itself to its OS thread for the
// rest of the call (runtime.LockOSThread), so that the thread's CPU time is
// the call's, and records the thread's CPU clock and its current reading.
// The timer then reads that clock (Linux: any thread's CPU clock can be
// read from another thread) and re-arms until the thread has used a whole
// budget of CPU since, re-arming for the remainder (at least a tenth of the
// budget, so that a descheduled call does not spin the timer). Then it
// stops the call: it marks the call context fired, and the guest's next
// yield panics, which ends the call with an error. A call that used less
// CPU than its budget is therefore never stopped, and a runaway guest is
// stopped after its budget of wall time plus its budget of CPU time (plus
// up to yieldEvery loop iterations). Calls shorter than the budget (nearly
// all) make no system call. Since a wasm guest cannot sleep or block
// except in a host function, CPU time is the measure of what it consumed.
// A call is stopped regardless after hardWallCap of wall time, so a guest
// stuck in a blocking host call is marked fired and ends at its next
// yield. Without a per-thread CPU clock (haveThreadClock false) the budget
// is wall time.
//
// The timer is not re-armed and stopped around every call (a Reset and a
// Stop cost about 60 ns, a third of the host's own work for an empty
// callback): begin arms it only when it is idle or set for later than the
// call's budget, and when it fires for a call that has ended, or for a
// later call still under budget, it re-arms for that call's remaining
// budget, or goes idle when no call is running. Under steady traffic it
// fires about once per budget per instance. It only ever stops the call
// that is active and over budget when it checks (under d.mu, which end
// also takes), so a call that completed within its budget never leaves the
// instance spent.
//
// begin, yield and end are called by the goroutine holding the instance's
// mu (yield from the sluice.yield host function, during the call); the
// timer function runs on another goroutine and synchronises with them
// through d.mu. A deadline lives as long as its instance.
type deadline struct {
	cc    *callCtx
	timer *time.Timer

	// wantClock is set by the timer when the budget has passed in wall
	// time and the call has not handed over its thread's CPU clock yet;
	// yield reads it without the lock (its fast path).
	wantClock atomic.Bool

	mu      sync.Mutex
	armed   bool          // the timer is pending (or running expire)
	due     time.Duration // when the pending timer fires (monoNow), if armed
	active  bool          // a call is running
	locked  bool          // yield locked the goroutine to its thread
	counted bool          // clock and cpu0 are set
	clock   threadClock   // the calling thread's CPU clock (valid when counted)
	cpu0    int64         // the thread's CPU time when counting began, ns
	budget  time.Duration // CPU budget of the call
	start   time.Duration // monotonic time (monoNow) at begin
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow reads the monotonic clock only (time.Now also reads the wall
// clock, which costs as much again).
func monoNow() time.Duration { return time.Since(monoEpoch) }

// hardWallCap is the wall-clock time after which a call is stopped even if
// it has used less CPU than its budget: max(1s, 100×budget), at most
// budget+1min.
func hardWallCap(budget time.Duration) time.Duration {
	return min(max(time.Second, 100*budget), budget+time.Minute)
}

// init prepares d for the instance whose call context is cc; the timer is
// created stopped.
func (d *deadline) init(cc *callCtx) {
	d.cc = cc
	d.timer = time.AfterFunc(time.Hour, d.expire)
	d.timer.Stop()
}

// begin starts the deadline of one call with the given CPU budget; now is
// monoNow() (the caller reads it for its own metrics too). The caller must
// call end when the call returns, on the same goroutine.
func (d *deadline) begin(now, budget time.Duration) {
	d.mu.Lock()
	d.active, d.counted, d.budget, d.start = true, false, budget, now
	// Re-arm when idle, or when armed for later than this call's budget
	// (after a call with a longer one, such as a start-up call).
	if !d.armed || d.due > now+budget {
		d.rearm(now, budget)
	}
	d.mu.Unlock()
}

// rearm sets the timer to fire after wait; d.mu must be held.
func (d *deadline) rearm(now, wait time.Duration) {
	d.armed, d.due = true, now+wait
	d.timer.Reset(wait)
}

// yield is called by the guest (through sluice.yield) every yieldEvery
// loop iterations, on the calling goroutine. If the timer asked for it, it
// locks the goroutine to its thread and starts counting the thread's CPU
// time.
func (d *deadline) yield() {
	if !d.wantClock.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.wantClock.Store(false)
	if !d.active || d.counted {
		return
	}
	if !d.locked {
		runtime.LockOSThread()
		d.locked = true
	}
	clock, ok := currentThreadClock()
	var now int64
	if ok {
		now, ok = clock.read()
	}
	if ok {
		d.counted, d.clock, d.cpu0 = true, clock, now
	}
}

// end finishes the call begun by begin; the timer cannot stop it after
// end returns.
func (d *deadline) end() {
	d.mu.Lock()
	d.active = false
	if d.wantClock.Load() {
		d.wantClock.Store(false)
	}
	locked := d.locked
	d.locked = false
	d.mu.Unlock()
	if locked {
		runtime.UnlockOSThread()
	}
}

// stop disarms the timer for good (the instance is closing).
func (d *deadline) stop() {
	d.mu.Lock()
	d.armed = true // begin must not re-arm it
	d.timer.Stop()
	d.mu.Unlock()
}

// expire is the timer's function. For a call over its budget it stops the
// call (fires the call context) if the call has used its CPU budget or
// reached its wall-clock cap, and re-arms the timer otherwise; for a call
// under budget it re-arms for the rest of it; with no call running the
// timer goes idle.
func (d *deadline) expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		d.armed = false
		return
	}
	now := monoNow()
	elapsed := now - d.start
	if elapsed < d.budget {
		d.rearm(now, d.budget-elapsed) // armed for an earlier call
		return
	}
	hardCap := hardWallCap(d.budget)
	if !haveThreadClock || elapsed >= hardCap {
		d.cc.fire()
		d.armed = false // the instance is discarded: no more checks
		return
	}
	next := d.budget / 10
	if d.counted {
		if cpu, ok := d.clock.read(); ok {
			used := time.Duration(cpu - d.cpu0)
			if used >= d.budget {
				d.cc.fire()
				d.armed = false
				return
			}
			next = max(d.budget-used, next)
		}
	} else {
		d.wantClock.Store(true)
	}
	d.rearm(now, min(next, hardCap-elapsed))
}
