package wasm

import (
	"runtime"
	"sync"
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
// request pinned to it. Now the calling goroutine is locked to its OS
// thread for the call (runtime.LockOSThread), so that thread's CPU time is
// the call's. Where the OS provides a per-thread CPU clock (Linux) the
// timer, when the budget has passed in wall time, starts counting: it
// reads the thread's CPU time and re-arms, and it stops the call once the
// thread has used a whole budget of CPU since that first expiry (it
// re-arms for the remainder, at least a tenth of the budget, so that a
// descheduled call does not spin the timer). A call that used less CPU than
// its budget is therefore never stopped, and a runaway guest is stopped
// after its budget of wall time plus its budget of CPU time. Counting from
// the first expiry rather than from the start of the call keeps the fast
// path (calls shorter than the budget: nearly all) at one system call
// (gettid); reading the CPU clock at the start of every call as well would
// double that. Since a wasm guest cannot sleep or block except in a host
// function, CPU time is the measure of what it consumed. A call is stopped
// regardless after hardWallCap(budget) of wall time, so a guest stuck in a
// blocking host call still ends. Without a per-thread CPU clock the budget
// is wall time, as before.
//
// The timer fires only while a call is active and over budget, so a call
// that completed within its budget never leaves the instance spent.
//
// begin and end are called by the goroutine holding the instance's mu; the
// timer function runs on another goroutine and synchronises with them
// through d.mu. A deadline lives as long as its instance.
type deadline struct {
	cc    *callCtx
	timer *time.Timer

	mu      sync.Mutex
	active  bool          // a call is running
	locked  bool          // begin locked the goroutine to its thread
	clock   threadClock   // the calling thread's CPU clock (valid when ok)
	ok      bool          // clock is valid
	counted bool          // cpu0 is set: the budget passed in wall time
	cpu0    int64         // the thread's CPU time at the first expiry, ns
	budget  time.Duration // CPU budget of the call
	start   time.Time     // wall time at begin (monotonic)
	hardCap time.Duration // wall-clock cap of the call
}

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

// begin starts the deadline of one call with the given CPU budget. The
// caller must call end when the call returns, on the same goroutine.
func (d *deadline) begin(budget time.Duration) {
	runtime.LockOSThread()
	clock, ok := currentThreadClock()
	d.mu.Lock()
	d.active, d.locked, d.counted = true, true, false
	d.clock, d.ok = clock, ok
	d.budget, d.hardCap = budget, hardWallCap(budget)
	d.start = time.Now()
	d.timer.Reset(budget)
	d.mu.Unlock()
}

// end finishes the call begun by begin; the timer cannot fire after it
// returns.
func (d *deadline) end() {
	d.mu.Lock()
	d.active = false
	d.timer.Stop()
	locked := d.locked
	d.locked = false
	d.mu.Unlock()
	if locked {
		runtime.UnlockOSThread()
	}
}

// expire is the timer's function: it stops the call (closes the call
// context's Done channel) if the call has used its CPU budget or reached
// its wall-clock cap, and re-arms the timer otherwise.
func (d *deadline) expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return // the call ended while the timer was firing
	}
	elapsed := time.Since(d.start)
	used := elapsed
	if d.ok {
		if now, ok := d.clock.read(); ok {
			if !d.counted {
				d.counted, d.cpu0 = true, now
			}
			used = time.Duration(now - d.cpu0)
		}
	}
	if used >= d.budget || elapsed >= d.hardCap {
		d.cc.fire()
		return
	}
	d.timer.Reset(min(max(d.budget-used, d.budget/10), d.hardCap-elapsed))
}
