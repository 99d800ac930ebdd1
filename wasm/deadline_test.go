package wasm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// needThreadClock skips the test where deadlines are wall-clock.
func needThreadClock(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	c, ok := currentThreadClock()
	if ok {
		_, ok = c.read()
	}
	runtime.UnlockOSThread()
	if !ok {
		t.Skip("no per-thread CPU clock on this OS: deadlines are wall-clock")
	}
}

func newTestDeadline() (*deadline, *callCtx) {
	cc := new(callCtx)
	d := new(deadline)
	d.init(cc)
	return d, cc
}

// burnUntilFired burns CPU in short bursts, yielding between them as a
// guest's stop checks make it do, until the deadline fires or limit has
// passed since start (a monoNow time); it then ends the call and returns
// the time since start.
func burnUntilFired(d *deadline, cc *callCtx, start, limit time.Duration) time.Duration {
	for !cc.fired.Load() && monoNow()-start < limit {
		d.yield()
		spinFor(10 * time.Microsecond)
	}
	el := monoNow() - start
	d.end()
	return el
}

// spinFor burns CPU on the calling goroutine for about d of wall time.
func spinFor(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// TestDeadlineCountsCPUNotWall: a call that has started counting (it
// yielded after the budget passed in wall time) and then waits for several
// budgets with its thread locked, using no CPU, is not stopped; once it
// burns its budget of CPU it is.
func TestDeadlineCountsCPUNotWall(t *testing.T) {
	needThreadClock(t)
	d, cc := newTestDeadline()
	const budget = 20 * time.Millisecond
	d.begin(monoNow(), budget)
	waitFor(t, "the deadline to ask for the thread's clock", d.wantClock.Load)
	d.yield()
	d.mu.Lock()
	counted, locked := d.counted, d.locked
	d.mu.Unlock()
	if !counted || !locked {
		d.end()
		t.Fatalf("after yield: counted %v, locked %v; want both", counted, locked)
	}
	time.Sleep(5 * budget)
	if cc.fired.Load() {
		d.end()
		t.Fatalf("deadline fired after %v of wall time but almost no CPU time", 6*budget)
	}
	// Burn CPU, yielding as the stop checks make a guest do: the first
	// yield starts the CPU count, so the deadline fires after about one
	// budget of CPU, long before the 1 s wall-clock cap.
	el := burnUntilFired(d, cc, monoNow(), 2*time.Second)
	if !cc.fired.Load() {
		t.Fatalf("deadline did not fire after %v of CPU time (budget %v)", el, budget)
	}
	if el >= hardWallCap(budget)-5*budget {
		t.Fatalf("deadline fired after %v, at the wall-clock cap rather than after its CPU budget %v", el, budget)
	}
}

// TestDeadlineArmedForEarlierCall: the timer, armed by a call that ended
// early, re-arms for the next call's own budget instead of judging it by
// the earlier call's start; that call is then stopped after its budget.
func TestDeadlineArmedForEarlierCall(t *testing.T) {
	needThreadClock(t)
	d, cc := newTestDeadline()
	const budget = 20 * time.Millisecond
	d.begin(monoNow(), budget)
	d.end()
	time.Sleep(budget * 3 / 4)
	start := monoNow()
	d.begin(start, budget)
	el := burnUntilFired(d, cc, start, 2*time.Second)
	if !cc.fired.Load() {
		t.Fatalf("deadline did not fire after %v of CPU time (budget %v)", el, budget)
	}
	if el < 2*budget {
		t.Fatalf("deadline fired %v after the call began, before its budget of wall time and then of CPU (2×%v)", el, budget)
	}
}

// TestDeadlineShorterBudgetRearms: after a call with a long budget (a
// start-up call), a call with a short one is judged by its own budget, not
// by the timer still set for the long one.
func TestDeadlineShorterBudgetRearms(t *testing.T) {
	needThreadClock(t)
	d, cc := newTestDeadline()
	d.begin(monoNow(), 10*time.Second)
	d.end()
	const budget = 20 * time.Millisecond
	start := monoNow()
	d.begin(start, budget)
	el := burnUntilFired(d, cc, start, 5*time.Second)
	if !cc.fired.Load() || el > time.Second {
		t.Fatalf("fired %v after %v; want a stop after about 2×%v", cc.fired.Load(), el, budget)
	}
}

// TestDeadlineNoYieldNoCount: a call that burns CPU without ever yielding
// (a guest stuck in a host function) is not counted, and is stopped at the
// wall-clock cap only.
func TestDeadlineNoYieldNoCount(t *testing.T) {
	needThreadClock(t)
	d, cc := newTestDeadline()
	const budget = 5 * time.Millisecond
	d.begin(monoNow(), budget)
	spinFor(20 * budget)
	fired := cc.fired.Load()
	d.end()
	if fired {
		t.Fatal("deadline fired for a call that never yielded, before the wall-clock cap")
	}
}

// TestDeadlineWallCap: a call that never uses its CPU budget is still
// stopped after hardWallCap.
func TestDeadlineWallCap(t *testing.T) {
	needThreadClock(t)
	d, cc := newTestDeadline()
	const budget = time.Millisecond
	if got := hardWallCap(budget); got != time.Second {
		t.Fatalf("hardWallCap(%v) = %v, want 1s", budget, got)
	}
	d.begin(monoNow(), budget)
	start := time.Now()
	for !cc.fired.Load() && time.Since(start) < 3*time.Second {
		time.Sleep(time.Millisecond) // no yield: as a guest in a host call
	}
	d.end()
	if !cc.fired.Load() {
		t.Fatalf("deadline did not fire after %v of wall time (cap %v)", time.Since(start), hardWallCap(budget))
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("deadline fired after %v, before the 1s wall-clock cap", el)
	}
}

// TestDeadlineEndDisarms: once end returns, neither the timer nor a
// re-arm left by it can stop a later call.
func TestDeadlineEndDisarms(t *testing.T) {
	d, cc := newTestDeadline()
	const budget = 2 * time.Millisecond
	for range 50 {
		d.begin(monoNow(), budget)
		spinFor(budget / 2)
		d.end()
	}
	time.Sleep(10 * budget)
	if cc.fired.Load() {
		t.Fatal("deadline fired after its calls had ended within budget")
	}
}

func TestHardWallCap(t *testing.T) {
	for _, c := range []struct{ budget, want time.Duration }{
		{time.Millisecond, time.Second},
		{10 * time.Millisecond, time.Second},
		{50 * time.Millisecond, 5 * time.Second},
		{5 * time.Second, 5*time.Second + time.Minute},
	} {
		if got := hardWallCap(c.budget); got != c.want {
			t.Errorf("hardWallCap(%v) = %v, want %v", c.budget, got, c.want)
		}
	}
}

// TestCallsWaitingForCPUAreNotDiscarded reproduces the benchmark failure:
// with GOMAXPROCS=1 and a goroutine hogging the CPU, a callback that is
// preempted mid-call waits ~10 ms (the scheduler's time slice) for the CPU
// again. Its wall time then exceeds a 10 ms CallTimeout although it used a
// fraction of that in CPU; the instance must not be discarded.
func TestCallsWaitingForCPUAreNotDiscarded(t *testing.T) {
	needThreadClock(t)
	if testing.Short() {
		t.Skip("runs for about a second")
	}
	h := newTestHost(t)
	p := h.mustLoad(t, proxy.PluginConfig{
		Name:        "spin",
		Path:        "testdata/cpu/spin.wasm",
		Instances:   1,
		CallTimeout: proxy.Duration(10 * time.Millisecond),
	})
	defer p.Close()

	// Calibrate: the spin guest loops 2000 times per request header; aim
	// at ~1 ms of CPU per proxy_on_request_headers (race detector or not),
	// well under the 10 ms budget.
	hdrs := 1
	for ; hdrs < 512; hdrs *= 2 {
		ex := spinExchange(hdrs)
		start := time.Now()
		if err := runRequest(p, ex); err != nil {
			t.Fatalf("calibration request: %v", err)
		}
		if time.Since(start) >= 500*time.Microsecond {
			break
		}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the CPU hog: preempted only by the scheduler's 10 ms slices
		defer wg.Done()
		for !stop.Load() {
		}
	}()
	var calls int
	var firstErr error
	for start := time.Now(); time.Since(start) < time.Second && firstErr == nil; calls++ {
		firstErr = runRequest(p, spinExchange(hdrs))
	}
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("request %d failed: %v", calls, firstErr)
	}
	if r := h.metric(`sluice_plugin_instance_restarts_total{plugin="spin"}`); r != "0" {
		t.Fatalf("instance restarts = %s after %d requests, want 0", r, calls)
	}
	if n := h.metric(`sluice_plugin_errors_total{plugin="spin",kind="timeout"}`); n != "0" {
		t.Fatalf("timeouts = %s after %d requests, want 0", n, calls)
	}
	t.Logf("%d requests of %d spin headers each, none stopped", calls, hdrs)
}

// spinExchange is a request with n headers in all (pseudo-headers
// included), so the spin guest loops n×2000 times in
// proxy_on_request_headers.
func spinExchange(n int) *proxy.Exchange {
	ex := newExchange("/spin")
	for i := ex.RequestHeaders().Len(); i < n; i++ {
		ex.RequestHeaders().AddString("x-pad", "1")
	}
	return ex
}
