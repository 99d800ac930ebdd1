package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Dispatcher sends the requests of one run open-loop, after SGLang's
// multi-turn benchmark (benchmark/hicache/bench_multiturn.py): a request
// is ready when the previous round of its session has finished (round 0,
// and every request of the other kinds, is ready at the start, in the
// order of the requests); at each tick of a Poisson process of the run's
// rate one ready request is sent, and a tick with nothing ready sends
// nothing, as SGLang's request loop pops nothing and sleeps another gap.
// So the rate sets the load, up to every session having a round in
// flight; the number of sessions only caps it.
//
// Which ready request: for a multi-turn workload one drawn at random
// (seeded) among those ready at the tick, as SGLang's default
// --ready-queue-policy random does. FIFO would, at a rate the fleet keeps
// up with, send each round in the order of the previous one, and with a
// session count that is a multiple of the engine count round robin would
// then send all of a session's rounds to one engine, an affinity it does
// not have. For the other kinds, whose order is already the workload's
// random order, the first. SGLang's --max-parallel cap on requests in
// flight (default 128) is not applied: requests queue in the engines,
// where the routers can see them.
//
// A request is stamped with the clock's time when it becomes ready and
// only a tick at or after that time can send it, so the schedule depends
// on when rounds finished, not on how late the sending goroutine wakes on
// a loaded machine (a late wake-up sends what was ready at the ticks it
// missed, at once). With every request ready at the start (shared-prefix,
// random) the k-th request goes out at the k-th tick, Arrivals(n, rate,
// seed)[k-1]: an open-loop Poisson stream.
//
// A Dispatcher is used for one run: Run once, with Done called (from any
// goroutine) as each sent request finishes. Done is safe for concurrent
// use with Run and itself.
type Dispatcher struct {
	reqs  []Request
	next  []int // index of the same session's next round; -1 for none
	clock Clock

	mu     sync.Mutex
	ready  []readyReq // requests ready to send, in the order they became ready
	random bool       // pick at random among those ready (multi-turn)
	rng    *rand.Rand // Run's seeded choices when random
	state  []byte     // per request: 0 waiting, 1 ready or sent, 2 finished
	wake   chan struct{}
}

// readyReq is a request in the ready queue and when it became ready.
type readyReq struct {
	i  int
	at time.Duration
}

// NewDispatcher returns a Dispatcher for reqs, which it keeps (read only),
// on clock (which stamps when rounds become ready and paces Run).
// Multi-turn requests are chained by session (Group) and round (Turn):
// every session's rounds must be 0, 1, … k with no gap and no repeat, else
// the error names the first session and round that are wrong. Requests of
// the other kinds are independent.
func NewDispatcher(reqs []Request, clock Clock) (*Dispatcher, error) {
	d := &Dispatcher{reqs: reqs, next: make([]int, len(reqs)), clock: clock, state: make([]byte, len(reqs)), wake: make(chan struct{}, 1)}
	type round struct{ session, turn int }
	at := map[round]int{}
	for i, r := range reqs {
		d.next[i] = -1
		if r.Kind != KindMultiTurn {
			continue
		}
		k := round{r.Group, r.Turn}
		if j, dup := at[k]; dup || r.Turn < 0 {
			return nil, fmt.Errorf("workload: request %d: session %d round %d is invalid or repeats request %d", i, r.Group, r.Turn, j)
		}
		at[k] = i
	}
	for i, r := range reqs {
		if r.Kind != KindMultiTurn || r.Turn == 0 {
			continue
		}
		prev, ok := at[round{r.Group, r.Turn - 1}]
		if !ok {
			return nil, fmt.Errorf("workload: request %d: session %d has round %d but no round %d", i, r.Group, r.Turn, r.Turn-1)
		}
		d.next[prev] = i
	}
	for i, r := range reqs {
		if r.Kind != KindMultiTurn || r.Turn == 0 {
			d.ready = append(d.ready, readyReq{i: i})
			d.state[i] = 1
		}
		d.random = d.random || r.Kind == KindMultiTurn
	}
	return d, nil
}

// Done records that request i has finished, whatever its outcome (a failed
// round still lets its session go on: the next round carries the
// placeholder answer). The session's next round, if any, joins the end of
// the ready queue, stamped with the clock's Now. Calls for an index out of range, not yet sent, or
// already done are ignored.
func (d *Dispatcher) Done(i int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i < 0 || i >= len(d.reqs) || d.state[i] != 1 {
		return
	}
	d.state[i] = 2
	if n := d.next[i]; n >= 0 {
		d.state[n] = 1
		d.ready = append(d.ready, readyReq{i: n, at: d.clock.Now()})
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// pop takes a request that was ready at tick t: the oldest, or with
// random one drawn among all those ready at t. ok is false when none was;
// then readyAt is when the oldest became ready (after t), or -1 when the
// queue is empty.
func (d *Dispatcher) pop(t time.Duration) (i int, readyAt time.Duration, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ready) == 0 {
		return 0, -1, false
	}
	if r := d.ready[0]; r.at > t {
		return 0, r.at, false
	}
	k := 0
	if d.random {
		// The queue is in ready order, so those ready at t are a prefix.
		n := 1
		for n < len(d.ready) && d.ready[n].at <= t {
			n++
		}
		k = d.rng.IntN(n)
	}
	i = d.ready[k].i
	d.ready = slices.Delete(d.ready, k, k+1)
	return i, 0, true
}

// Clock is the time a Dispatcher runs on, from the start of the run.
type Clock interface {
	// Now is the time since the start of the run.
	Now() time.Duration
	// SleepUntil returns nil once Now() >= t, or ctx.Err() if ctx is
	// done first.
	SleepUntil(ctx context.Context, t time.Duration) error
}

// Run sends every request: at each tick of the Poisson process of rate
// requests per (clock) second and seed, it takes a request ready at that
// tick (see Dispatcher: the oldest, or for multi-turn one drawn with seed)
// and calls send with its index and the tick. send is called
// from Run's goroutine and must not block: it starts the request, and
// Done(i) must follow when it finishes, or Run waits for it until ctx is
// done. A tick at which no request was ready sends nothing (when none is
// ready, Run waits for one, or ctx). Run starts no goroutine. It returns nil once every request has
// been sent, ctx.Err() when ctx is done first (the rest are not sent), or
// an error for a rate that is not a finite number > 0.
func (d *Dispatcher) Run(ctx context.Context, rate float64, seed int64, send func(i int, at time.Duration)) error {
	ticks, err := newPoisson(rate, seed)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.rng = rand.New(rand.NewPCG(uint64(seed), 0x5e55))
	d.mu.Unlock()
	t := ticks.next()
	for sent := 0; sent < len(d.reqs); {
		if err := d.clock.SleepUntil(ctx, t); err != nil {
			return err
		}
		i, readyAt, ok := d.pop(t)
		switch {
		case ok:
		case readyAt >= 0: // the oldest became ready after t
			for t < readyAt {
				t = ticks.next()
			}
			continue
		default:
			select {
			case <-d.wake:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		send(i, t)
		sent++
		t = ticks.next()
	}
	return nil
}

// WallClock is real time since start, scaled: scale clock seconds pass
// per wall second (the engines' time scale, so that rates and ticks are in
// simulated time). scale must be > 0.
func WallClock(start time.Time, scale float64) Clock {
	return wallClock{start: start, scale: scale}
}

type wallClock struct {
	start time.Time
	scale float64
}

func (c wallClock) Now() time.Duration {
	return time.Duration(float64(time.Since(c.start)) * c.scale)
}

func (c wallClock) SleepUntil(ctx context.Context, t time.Duration) error {
	wait := time.Until(c.start.Add(time.Duration(float64(t) / c.scale)))
	if wait <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
