package sim

import (
	"errors"
	"sync"
	"time"
)

// ErrClosed is the error of requests still in flight when the engine is
// closed, and of requests made after.
var ErrClosed = errors.New("sim: engine closed")

// Engine is one simulated inference engine. Its methods are safe for
// concurrent use. It owns a scheduler goroutine from New until Close.
type Engine struct {
	cfg       Config
	modelJSON string // the model name, JSON-quoted
	created   int64  // unix seconds, for /v1/models and responses
	manual    bool   // tests drive step(); no goroutine, no wall clock

	mu       sync.Mutex
	kv       *blockPool
	waiting  []*seq
	running  []*seq
	nextID   uint64
	closed   bool
	hitBuf   []int32
	simBase  time.Duration // simulated time at wallBase
	wallBase time.Time
	busy     bool          // a step was planned since the engine was last idle
	stalled  time.Duration // wall time forgiven past maxLag (loop); guarded by mu

	// counters, guarded by mu
	prefixQueries, prefixHits      int64
	promptTokens, generationTokens int64
	preemptions                    int64
	finished, finishedStop         int64
	ttft                           histogram
	ttftSum                        time.Duration // exact, beside the histogram's float sum

	wake chan struct{} // cap 1: work arrived or Close
	quit chan struct{}
	done chan struct{} // closed when the scheduler goroutine returns
	once sync.Once
}

// Stats is a snapshot of an engine's state and counters.
type Stats struct {
	Running, Waiting int
	// KVUsage is the fraction of KV blocks in use, 0 to 1
	// (vllm:kv_cache_usage_perc); free cached blocks count as free.
	KVUsage float64
	// PrefixQueries and PrefixHits count tokens, as vLLM's
	// vllm:prefix_cache_queries_total and vllm:prefix_cache_hits_total do:
	// every admitted request queries all its tokens (after a preemption,
	// its prompt and output so far) and hits the
	// tokens of its cached leading blocks.
	PrefixQueries, PrefixHits      int64
	PromptTokens, GenerationTokens int64
	Preemptions                    int64
	RequestsFinished               int64

	// Not in vLLM's metrics, for benchmarks:

	// Evictions counts cached blocks evicted to make room.
	Evictions int64
	// SimulatedTime is the engine's clock: simulated time since New.
	SimulatedTime time.Duration
	// TTFTSum and TTFTCount total the simulated time to first token of
	// every request that got one (vllm:time_to_first_token_seconds).
	TTFTSum   time.Duration
	TTFTCount int64
	// Stalled is the wall time the scheduler fell behind its pace by more
	// than it catches up (maxLag, 20 ms) and forgave: time in which the
	// simulated clock stood still while the clients' clocks ran, so what
	// they measured includes it. Non-zero means the process was starved
	// of CPU (or paused) and the run's latencies are not the model's.
	Stalled time.Duration
}

// New validates cfg (an error names the bad field), applies its defaults
// and starts the engine's scheduler goroutine. Close stops it.
func New(cfg Config) (*Engine, error) {
	e, err := newEngine(cfg, false)
	if err != nil {
		return nil, err
	}
	go e.loop()
	return e, nil
}

func newEngine(cfg Config, manual bool) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:       cfg,
		modelJSON: `"` + cfg.Model + `"`, // validate rejects quotes, backslashes and controls
		created:   time.Now().Unix(),
		manual:    manual,
		kv:        newBlockPool(cfg.NumBlocks),
		wallBase:  time.Now(),
		ttft:      newHistogram(ttftBuckets),
		wake:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if manual {
		close(e.done)
	}
	return e, nil
}

// Close stops the scheduler; requests in flight end with ErrClosed, and
// later ones are refused. It waits for the scheduler goroutine to return
// and is idempotent.
func (e *Engine) Close() {
	e.once.Do(func() {
		e.mu.Lock()
		e.closed = true
		for _, s := range e.running {
			e.finish(s, ErrClosed)
		}
		for _, s := range e.waiting {
			e.finish(s, ErrClosed)
		}
		e.running, e.waiting = nil, nil
		e.mu.Unlock()
		close(e.quit)
		<-e.done
	})
}

// Stats returns a snapshot of the engine's state and counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{
		Running:          len(e.running),
		Waiting:          len(e.waiting),
		KVUsage:          float64(e.kv.used()) / float64(len(e.kv.blocks)),
		PrefixQueries:    e.prefixQueries,
		PrefixHits:       e.prefixHits,
		PromptTokens:     e.promptTokens,
		GenerationTokens: e.generationTokens,
		Preemptions:      e.preemptions,
		RequestsFinished: e.finished,
		Evictions:        e.kv.evictions,
		SimulatedTime:    e.now(),
		TTFTSum:          e.ttftSum,
		TTFTCount:        int64(e.ttft.count),
		Stalled:          e.stalled,
	}
}

// now is the simulated time: the end of the last step plus the wall time
// since, scaled. Manual engines only move by steps. Called with e.mu held.
func (e *Engine) now() time.Duration {
	if e.manual {
		return e.simBase
	}
	return e.simBase + time.Duration(float64(time.Since(e.wallBase))*e.cfg.TimeScale)
}

// request is what a handler asks the engine to generate.
type request struct {
	prompt    []uint32
	maxTokens int // 0: the room left in the context window
	ignoreEOS bool
}

// errTooLong is returned by submit when the prompt and output do not fit
// in the context window.
type errTooLong struct{ maxLen, prompt, output int }

func (e errTooLong) Error() string {
	return "This model's maximum context length is " + itoa(e.maxLen) + " tokens. However, you requested " +
		itoa(e.prompt+e.output) + " tokens (" + itoa(e.prompt) + " in the messages, " + itoa(e.output) +
		" in the completion). Please reduce the length of the messages or completion."
}

// submit queues r and returns its sequence; the caller must call cancel
// when it stops waiting, whatever the outcome.
func (e *Engine) submit(r request) (*seq, error) {
	room := e.cfg.MaxModelLen - len(r.prompt)
	out := r.maxTokens
	if out == 0 {
		out = room
	}
	if len(r.prompt) == 0 {
		return nil, errors.New("the prompt is empty")
	}
	if room < 1 || out > room {
		return nil, errTooLong{e.cfg.MaxModelLen, len(r.prompt), max(out, 1)}
	}
	s := &seq{
		promptLen:  len(r.prompt),
		tokens:     r.prompt,
		promptHash: hashPrompt(r.prompt),
		notify:     make(chan struct{}, 1),
		target:     out,
		reason:     "length",
	}
	if !r.ignoreEOS {
		if n := naturalLen(e.cfg.Seed, s.promptHash); n <= out {
			s.target, s.reason = n, "stop"
		}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	e.nextID++
	s.id = e.nextID
	s.arrival = e.now()
	e.waiting = append(e.waiting, s)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return s, nil
}

// cancel ends s if it has not finished (its client went away): it leaves
// the queue or the batch at once and its blocks are freed.
func (e *Engine) cancel(s *seq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.finished {
		return
	}
	e.finish(s, errCancelled)
	e.waiting = remove(e.waiting, s)
	e.running = remove(e.running, s)
}

var errCancelled = errors.New("sim: request cancelled")

func remove(l []*seq, s *seq) []*seq {
	for i, x := range l {
		if x == s {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			return l[:len(l)-1]
		}
	}
	return l
}

// progress returns how many tokens s has generated, whether it finished
// and its error.
func (e *Engine) progress(s *seq) (generated int, finished bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return s.generated, s.finished, s.err
}

// step plans one step, advances the simulated clock by its duration and
// applies it, with no sleeping: the tests' deterministic driver. It
// returns the step's plan (empty when there was nothing to do).
func (e *Engine) step() plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	var p plan
	e.schedule(&p, e.simBase)
	if len(p.work) == 0 {
		return plan{}
	}
	e.simBase += p.dur
	e.apply(&p, e.simBase)
	return p
}

// maxLag is how far the scheduler may fall behind its wall-clock pace and
// still catch up by running steps without sleeping; a longer stall is
// forgiven, so a paused process does not answer with a burst of steps.
const maxLag = 20 * time.Millisecond

// loop is the scheduler goroutine: plan a step, sleep its duration scaled
// by TimeScale (against a running deadline, so oversleeping one step is
// made up in the next), apply it; block while there is nothing to do.
func (e *Engine) loop() {
	defer close(e.done)
	var p plan
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var deadline time.Time
	for {
		e.mu.Lock()
		idle := !e.busy
		if idle {
			// Back from idle: the first step starts when the first request
			// arrived, not when this goroutine woke up (at a large
			// TimeScale the wake-up delay would count as seconds of TTFT).
			start := e.now()
			if len(e.waiting) > 0 {
				start = max(e.simBase, min(start, e.waiting[0].arrival))
			}
			e.simBase, e.wallBase = start, time.Now()
			deadline = e.wallBase
		}
		start := e.simBase
		e.schedule(&p, start)
		e.busy = len(p.work) > 0
		e.mu.Unlock()
		if len(p.work) == 0 {
			select {
			case <-e.wake:
				continue
			case <-e.quit:
				return
			}
		}
		if behind := time.Since(deadline); behind > maxLag {
			deadline = deadline.Add(behind - maxLag) // stalled (GC, CPU starvation): catch up at most maxLag
			e.mu.Lock()
			e.stalled += behind - maxLag
			e.mu.Unlock()
		}
		deadline = deadline.Add(time.Duration(float64(p.dur) / e.cfg.TimeScale))
		if d := time.Until(deadline); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-e.quit:
				timer.Stop()
				return
			}
		}
		e.mu.Lock()
		e.simBase, e.wallBase = start+p.dur, deadline
		e.apply(&p, e.simBase)
		e.mu.Unlock()
	}
}
