package workload

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only when SleepUntil asks for a
// later time or the test sets it: the dispatcher's schedule is checked
// without waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Duration
}

func (c *fakeClock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.set(t)
	return nil
}

// set moves the clock to t unless it is already later.
func (c *fakeClock) set(t time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = max(c.now, t)
}

// blockedClock is real time that never reaches a tick: SleepUntil waits
// for ctx.
type blockedClock struct{}

func (blockedClock) Now() time.Duration { return 0 }
func (blockedClock) SleepUntil(ctx context.Context, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

// ticks returns the first n ticks of rate and seed.
func ticks(t *testing.T, n int, rate float64, seed int64) []time.Duration {
	t.Helper()
	at, err := Arrivals(n, rate, seed)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// TestDispatcherRateWhenAllReady checks the schedule of requests that are
// all ready at the start: the k-th goes out at the k-th Poisson tick, in
// request order, and the dispatcher waited for each tick.
func TestDispatcherRateWhenAllReady(t *testing.T) {
	const n, rate = 4000, 40.0
	reqs := requests(t, Spec{Name: "r", Random: &Random{Requests: n, PromptLen: 1, OutputLen: 1}}, 1, n)
	clock := &fakeClock{}
	d, err := NewDispatcher(reqs, clock)
	if err != nil {
		t.Fatal(err)
	}
	var order []int
	var at []time.Duration
	err = d.Run(context.Background(), rate, 9, func(i int, tick time.Duration) {
		if now := clock.Now(); now < tick {
			t.Fatalf("request %d sent at %v, before its tick %v", i, now, tick)
		}
		order, at = append(order, i), append(at, tick)
		d.Done(i)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ticks(t, n, rate, 9)
	if !slices.Equal(at, want) {
		t.Fatal("the sends are not at the Poisson ticks of the seed")
	}
	for k, i := range order {
		if i != k {
			t.Fatalf("send %d was request %d; requests that are all ready go in order", k, i)
		}
	}
	// 40/s over the first 60 s: 2400 expected, standard deviation ~49; the
	// seed fixes the count, the bounds only say "the rate, not another".
	inWindow := 0
	for _, a := range at {
		if a < 60*time.Second {
			inWindow++
		}
	}
	if inWindow < 2200 || inWindow > 2600 {
		t.Fatalf("%d sends in the first 60 s at %v/s, want about 2400", inWindow, rate)
	}
}

// TestDispatcherLostTicks checks one session alone: each round goes out at
// the first tick at or after its previous round finished (service time
// 700 ms after its send), and the ticks in between send nothing.
func TestDispatcherLostTicks(t *testing.T) {
	const rate, service = 10.0, 700 * time.Millisecond
	reqs := requests(t, Spec{Name: "one", MultiTurn: &MultiTurn{Sessions: 1, Turns: 6, UserLen: 2, OutputLen: 1}}, 1, 6)
	clock := &fakeClock{}
	d, _ := NewDispatcher(reqs, clock)
	var at []time.Duration
	err := d.Run(context.Background(), rate, 4, func(i int, tick time.Duration) {
		if reqs[i].Turn != len(at) {
			t.Fatalf("round %d sent as send %d", reqs[i].Turn, len(at))
		}
		at = append(at, tick)
		clock.set(tick + service) // the round finishes...
		d.Done(i)                 // ...and the next is ready then
	})
	if err != nil {
		t.Fatal(err)
	}
	all := ticks(t, 1000, rate, 4)
	want := []time.Duration{all[0]}
	for k := 0; len(want) < 6; k++ {
		if all[k] >= want[len(want)-1]+service {
			want = append(want, all[k])
		}
	}
	if !slices.Equal(at, want) {
		t.Fatalf("sent at %v, want %v (first tick after each previous round finished)", at, want)
	}
}

// TestDispatcherSessionOrder runs many sessions whose rounds finish in a
// scrambled order, at a rate high enough that rounds wait for each other:
// no round starts before the previous round of its session finished, each
// request is sent once, every send is at a tick not before its round was
// ready, and the rounds do not go out in the order they became ready (a
// random pick among the ready).
func TestDispatcherSessionOrder(t *testing.T) {
	spec := Spec{Name: "mt", MultiTurn: &MultiTurn{Sessions: 24, Turns: 5, UserLen: 2, OutputLen: 1}}
	reqs := requests(t, spec, 2, 24*5)
	index := map[[2]int]int{}
	for i, r := range reqs {
		index[[2]int{r.Group, r.Turn}] = i
	}
	clock := &fakeClock{}
	d, _ := NewDispatcher(reqs, clock)

	var mu sync.Mutex
	finished := map[int]time.Duration{} // when each request finished
	var sends, wantOrder []int
	var problems []string
	for i, r := range reqs {
		if r.Turn == 0 {
			wantOrder = append(wantOrder, i)
		}
	}
	var lastTick time.Duration
	started := make(chan int, len(reqs))
	send := func(i int, tick time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		r := reqs[i]
		if slices.Contains(sends, i) {
			problems = append(problems, "request sent twice")
		}
		if r.Turn > 0 {
			if f, ok := finished[index[[2]int{r.Group, r.Turn - 1}]]; !ok || tick < f {
				problems = append(problems, "a round started before its previous round finished")
			}
		}
		if tick <= lastTick {
			problems = append(problems, "ticks not increasing")
		}
		lastTick = tick
		sends = append(sends, i)
		started <- i
	}
	// The fleet: finishes a random pending request (advancing the clock a
	// little first) until the dispatcher is done.
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(context.Background(), 50, 3, send) }()
	rng := rand.New(rand.NewPCG(5, 6))
	var pending []int
	for done := 0; done < len(reqs); {
		select {
		case i := <-started:
			pending = append(pending, i)
			continue
		default:
		}
		if len(pending) == 0 {
			pending = append(pending, <-started)
			continue
		}
		k := rng.IntN(len(pending))
		i := pending[k]
		pending = slices.Delete(pending, k, k+1)
		clock.set(clock.Now() + time.Duration(rng.IntN(50))*time.Millisecond)
		mu.Lock()
		finished[i] = clock.Now()
		r := reqs[i]
		if next, ok := index[[2]int{r.Group, r.Turn + 1}]; ok {
			wantOrder = append(wantOrder, next)
		}
		mu.Unlock()
		d.Done(i)
		done++
	}
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	if len(sends) != len(wantOrder) || !slices.Equal(slices.Sorted(slices.Values(sends)), slices.Sorted(slices.Values(wantOrder))) {
		t.Fatalf("sent %v, want each of %v once", sends, wantOrder)
	}
	// Multi-turn rounds go out in random order among those ready, not
	// in the order they became ready (FIFO would line sessions up with
	// engines).
	if slices.Equal(sends, wantOrder) {
		t.Fatalf("send order %v is the ready order: want a random pick among the ready", sends)
	}
}

// TestDispatcherPopPicksAmongReady checks pop's choice for multi-turn
// rounds: only a round ready at the tick, each of them for some seed, and
// the oldest for the other kinds.
func TestDispatcherPopPicksAmongReady(t *testing.T) {
	reqs := requests(t, Spec{Name: "mt", MultiTurn: &MultiTurn{Sessions: 4, Turns: 1, UserLen: 2, OutputLen: 1}}, 1, 4)
	picked := map[int]bool{}
	for seed := range uint64(64) {
		d, err := NewDispatcher(reqs, &fakeClock{})
		if err != nil {
			t.Fatal(err)
		}
		d.rng = rand.New(rand.NewPCG(seed, 1))
		d.ready[3].at = 5 * time.Second // the last becomes ready later
		late := d.ready[3].i
		i, _, ok := d.pop(time.Second)
		if !ok || i == late {
			t.Fatalf("seed %d: popped %d, %v; the round ready at 5 s must wait", seed, i, ok)
		}
		for _, r := range d.ready {
			if r.i == i {
				t.Fatalf("seed %d: %d popped but still queued", seed, i)
			}
		}
		picked[i] = true
	}
	if len(picked) != 3 {
		t.Errorf("picked %v over 64 seeds, want each of the 3 ready rounds", picked)
	}
	// Shared-prefix requests keep their order.
	sp := requests(t, Spec{Name: "sp", SharedPrefix: &SharedPrefix{Groups: 2, PromptsPerGroup: 2, SystemLen: 2, QuestionLen: 1, OutputLen: 1}}, 1, 4)
	d, _ := NewDispatcher(sp, &fakeClock{})
	d.rng = rand.New(rand.NewPCG(1, 1))
	for want := range 4 {
		if i, _, ok := d.pop(time.Second); !ok || i != want {
			t.Fatalf("shared-prefix pop %d = %d, %v; want in order", want, i, ok)
		}
	}
}

func TestDispatcherRejects(t *testing.T) {
	mt := func(turns ...int) []Request {
		var out []Request
		for _, k := range turns {
			out = append(out, Request{Kind: KindMultiTurn, Group: 7, Turn: k})
		}
		return out
	}
	f := func(reqs []Request, want string) {
		t.Helper()
		if _, err := NewDispatcher(reqs, &fakeClock{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%v: %v, want an error containing %q", reqs, err, want)
		}
	}
	f(mt(0, 2), "session 7 has round 2 but no round 1")
	f(mt(0, 1, 1), "request 2: session 7 round 1 is invalid or repeats request 1")
	f(mt(-1), "session 7 round -1 is invalid")
	d, _ := NewDispatcher(mt(0), &fakeClock{})
	for _, r := range []float64{0, -3} {
		if err := d.Run(context.Background(), r, 1, func(int, time.Duration) {}); err == nil || !strings.Contains(err.Error(), "rate is") {
			t.Fatalf("rate %v: %v", r, err)
		}
	}
	d.Done(-1) // ignored, as are rounds not sent
	d.Done(5)
	d.Done(0)
}

// TestDispatcherCancel cancels a dispatcher that waits for a round to be
// ready (none of the sent rounds finishes) and one that waits for a tick
// (wall time, a tick far away): both return the context's error soon and
// leave no goroutine behind.
func TestDispatcherCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	reqs := requests(t, testMulti, 1, 6*4)
	for name, clock := range map[string]Clock{"waiting for a ready round": &fakeClock{}, "waiting for a tick": WallClock(time.Now(), 1), "blocked clock": blockedClock{}} {
		d, _ := NewDispatcher(reqs, clock)
		ctx, cancel := context.WithCancel(context.Background())
		sent := make(chan int, len(reqs))
		out := make(chan error, 1)
		go func() {
			out <- d.Run(ctx, 1e-3, 1, func(i int, _ time.Duration) { sent <- i })
		}()
		if name == "waiting for a ready round" {
			for range 6 { // every session's round 0, then nothing is ready
				<-sent
			}
		}
		cancel()
		select {
		case err := <-out:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: Run returned %v, want context.Canceled", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Run did not return within 10 s of the cancel", name)
		}
	}
	// Every goroutine this test started has returned; the runtime may take
	// a moment to retire them.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
