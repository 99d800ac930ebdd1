package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/tetratelabs/wazero"
)

// Plugin is one loaded Proxy-Wasm plugin: a compiled module and a small
// fixed set of instances. It implements proxy.Filter and is safe for
// concurrent use. Close it (or close its Host) to release it.
type Plugin struct {
	host        *Host
	name        string
	log         *slog.Logger
	config      []byte
	vmConfig    []byte
	nameBytes   []byte
	rootIDBytes []byte
	vmIDBytes   []byte
	failOpen    bool
	callTimeout time.Duration
	memLimit    uint64
	compiled    wazero.CompiledModule
	info        moduleInfo
	shared      *sharedData
	sharedRules *sharedRules // the plugin's bounds on its shared-data writes
	metrics     pluginMetrics
	env         [][2]string // the guest's WASI environment (guestEnv)
	logLimit    *logLimiter // nil: unlimited
	redis       redisState  // proxy_redis_init settings and Redis call metrics

	slots []slot
	last  atomic.Uint32 // the slot pick chose last: ties go to it
	pool  sync.Pool

	// ctx is the parent of every HTTP call's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	tickMu sync.Mutex
	tick   tickState

	userMetrics pluginMetricTable

	// The pool's lifecycle (pool.go): poolMu guards spare (a started
	// instance ready to take a discarded one's slot), refilling (the
	// rebuilding goroutine runs), shut (Close started: nothing is placed)
	// and ready (closed and replaced whenever an instance is placed in a
	// slot), and every instance's slot field.
	poolMu    sync.Mutex
	spare     *instance
	refilling bool
	shut      bool
	ready     chan struct{}

	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup // replacement, tick, callout and queue goroutines
}

// slot holds one instance position; a discarded instance is replaced in
// the same slot.
type slot struct {
	inst   atomic.Pointer[instance]
	pinned atomic.Int64 // streams pinned to the slot's instances
}

// Name returns the plugin's configured name.
func (p *Plugin) Name() string { return p.name }

// FailOpen reports whether the plugin's failure policy is fail_open.
func (p *Plugin) FailOpen() bool { return p.failOpen }

// load instantiates the plugin's instances and its spare; on error
// everything created is released.
func (p *Plugin) load(ctx context.Context, n int) error {
	p.slots = make([]slot, n)
	p.ready = make(chan struct{})
	p.done = make(chan struct{})
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.tick.wake = make(chan struct{}, 1)
	p.pool.New = func() any { return new(stream) }
	for i := range len(p.slots) + 1 {
		idx := i
		if i == len(p.slots) {
			idx = -1 // the spare
		}
		in, err := p.newInstance(ctx, idx)
		if err != nil {
			// Stop what the instances already started (ticks, calls).
			p.shutdown()
			return err
		}
		if idx < 0 {
			p.poolMu.Lock()
			p.spare = in
			p.poolMu.Unlock()
			continue
		}
		p.slots[i].inst.Store(in)
		in.published()
	}
	return nil
}

// NewStream starts the plugin's work on one request: it pins the request
// to the least-loaded live instance and creates its HTTP context there
// (proxy_on_context_create). An instance that died after it was picked is
// never used: NewStream picks again. When no instance is alive (every slot
// lost its instance and the spare is used up), it waits for a replacement,
// up to HostConfig.StartTimeout, before failing with KindUnavailable.
func (p *Plugin) NewStream(ex *proxy.Exchange) (proxy.Stream, error) {
	var waitUntil time.Time
	for {
		sl, in := p.pick()
		if in == nil {
			if p.waitReady(&waitUntil) {
				continue
			}
			p.metrics.errorsOf(KindUnavailable).Inc()
			return nil, &CallError{Plugin: p.name, Callback: exportContextCreate, Kind: KindUnavailable, Err: ErrNoInstance}
		}
		if s, err, ok := p.startOn(ex, sl, in); ok {
			return s, err
		}
	}
}

// startOn creates the request's HTTP context on in; ok is false when in
// died after it was picked (the caller picks again).
func (p *Plugin) startOn(ex *proxy.Exchange, sl *slot, in *instance) (_ proxy.Stream, _ error, ok bool) {
	s := p.pool.Get().(*stream)
	s.p, s.inst, s.slot, s.ex = p, in, sl, ex
	sl.pinned.Add(1)
	in.mu.Lock()
	if in.dead.Load() {
		in.mu.Unlock()
		s.release()
		return nil, nil, false
	}
	in.nextID++
	if in.nextID <= rootContextID {
		in.nextID = rootContextID + 1
	}
	s.id = in.nextID
	in.streams[s.id] = s
	_, err := in.call(cbContextCreate, s, uint64(s.id), rootContextID, 0, p.callTimeout)
	if err != nil {
		delete(in.streams, s.id)
		in.mu.Unlock()
		s.release()
		return nil, err, true
	}
	in.mu.Unlock()
	return s, nil, true
}

// pick returns the live instance with the fewest pinned requests; among
// equals, the one picked last, whose memory (the guest's heap and stack)
// the last request left in the CPU's caches: a Go guest costs several
// times more cold (RATIONALE.md, "The instance used last takes ties").
func (p *Plugin) pick() (*slot, *instance) {
	n := uint32(len(p.slots))
	start := p.last.Load()
	var best *slot
	var bestIn *instance
	var bestLoad int64
	var bestIdx uint32
	for i := range n {
		idx := (start + i) % n
		sl := &p.slots[idx]
		in := sl.inst.Load()
		if in == nil || in.dead.Load() {
			continue
		}
		if l := sl.pinned.Load(); bestIn == nil || l < bestLoad {
			best, bestIn, bestLoad, bestIdx = sl, in, l, idx
		}
	}
	if bestIn != nil && bestIdx != start {
		p.last.Store(bestIdx)
	}
	return best, bestIn
}

// goTracked runs f on a goroutine that Close waits for; it reports false
// (and does not run f) once the plugin is closed.
func (p *Plugin) goTracked(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// Close stops the plugin: it stops its ticks, cancels its HTTP calls
// (their replies are dropped), waits for its background goroutines and
// releases every instance and the compiled module. Requests still using
// the plugin fail on their next callback. Its metrics stay registered and
// its shared data and queues stay in the Host. Close is idempotent.
func (p *Plugin) Close() error {
	if !p.shutdown() {
		return nil
	}
	p.logLimit.close()
	err := p.compiled.Close(context.Background())
	p.host.forget(p)
	if err != nil {
		return pluginError(p.name, fmt.Errorf("close: %w", err))
	}
	return nil
}

// shutdown marks the plugin closed, stops its ticks and HTTP calls, waits
// for its background goroutines and closes its instances. It reports false,
// doing nothing, when the plugin was closed already.
func (p *Plugin) shutdown() bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	p.cancel()
	p.wg.Wait()
	p.closeInstances()
	return true
}

// liveInstances counts instances that can take requests (for tests).
func (p *Plugin) liveInstances() int {
	n := 0
	for i := range p.slots {
		if in := p.slots[i].inst.Load(); in != nil && !in.dead.Load() {
			n++
		}
	}
	return n
}

var _ proxy.Filter = (*Plugin)(nil)
