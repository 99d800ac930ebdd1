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
	metrics     pluginMetrics
	env         [][2]string // the guest's WASI environment (guestEnv)
	logLimit    *logLimiter // nil: unlimited

	slots []slot
	rr    atomic.Uint32
	pool  sync.Pool

	// ctx is the parent of every HTTP call's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	tickMu sync.Mutex
	tick   tickState

	userMetrics pluginMetricTable

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

// load instantiates the plugin's instances; on error everything created is
// released.
func (p *Plugin) load(ctx context.Context, n int) error {
	p.slots = make([]slot, n)
	p.done = make(chan struct{})
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.tick.wake = make(chan struct{}, 1)
	p.pool.New = func() any { return new(stream) }
	for i := range p.slots {
		in, err := p.newInstance(ctx, i)
		if err != nil {
			// Stop what the instances already started (ticks, calls).
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			close(p.done)
			p.cancel()
			p.wg.Wait()
			p.closeInstances()
			return err
		}
		p.slots[i].inst.Store(in)
		in.published()
	}
	return nil
}

// NewStream starts the plugin's work on one request: it pins the request
// to the least-loaded live instance and creates its HTTP context there
// (proxy_on_context_create).
func (p *Plugin) NewStream(ex *proxy.Exchange) (proxy.Stream, error) {
	sl, in := p.pick()
	if in == nil {
		p.metrics.errorsOf(KindUnavailable).Inc()
		return nil, &CallError{Plugin: p.name, Callback: exportContextCreate, Kind: KindUnavailable, Err: ErrInstanceDiscarded}
	}
	s := p.pool.Get().(*stream)
	s.p, s.inst, s.slot, s.ex = p, in, sl, ex
	sl.pinned.Add(1)
	in.mu.Lock()
	if in.dead.Load() {
		in.mu.Unlock()
		s.release()
		p.metrics.errorsOf(KindUnavailable).Inc()
		return nil, &CallError{Plugin: p.name, Callback: exportContextCreate, Kind: KindUnavailable, Err: ErrInstanceDiscarded}
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
		return nil, err
	}
	in.mu.Unlock()
	return s, nil
}

// pick returns the live instance with the fewest pinned requests, starting
// the scan at a rotating position so that ties spread round-robin.
func (p *Plugin) pick() (*slot, *instance) {
	n := uint32(len(p.slots))
	start := p.rr.Add(1)
	var best *slot
	var bestIn *instance
	var bestLoad int64
	for i := range n {
		sl := &p.slots[(start+i)%n]
		in := sl.inst.Load()
		if in == nil || in.dead.Load() {
			continue
		}
		if l := sl.pinned.Load(); bestIn == nil || l < bestLoad {
			best, bestIn, bestLoad = sl, in, l
		}
	}
	return best, bestIn
}

// replace takes a dead instance out of its slot and starts a replacement
// in the background. It is called with old.mu held.
func (p *Plugin) replace(old *instance) {
	p.slots[old.slot].inst.CompareAndSwap(old, nil)
	if !p.goTracked(func() { p.replaceLoop(old) }) {
		go old.close()
	}
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

// Backoff between attempts to replace a discarded instance.
const (
	minReplaceBackoff = 50 * time.Millisecond
	maxReplaceBackoff = 5 * time.Second
)

func (p *Plugin) replaceLoop(old *instance) {
	old.mu.Lock() // wait until the failing call has returned
	old.mu.Unlock()
	old.close()
	backoff := minReplaceBackoff
	for {
		in, err := p.newInstance(context.Background(), old.slot)
		if err == nil {
			p.mu.Lock()
			closed := p.closed
			if !closed {
				p.slots[old.slot].inst.Store(in)
			}
			p.mu.Unlock()
			if closed {
				in.mu.Lock()
				in.dead.Store(true)
				in.stopAsync()
				in.mu.Unlock()
				in.close()
			} else {
				in.published()
			}
			p.metrics.restarts.Inc()
			return
		}
		p.log.Error("wasm: cannot replace a discarded plugin instance", "error", err, "retry_in", backoff)
		select {
		case <-p.done:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxReplaceBackoff)
	}
}

// Close stops the plugin: it stops its ticks, cancels its HTTP calls
// (their replies are dropped), waits for its background goroutines and
// releases every instance and the compiled module. Requests still using
// the plugin fail on their next callback. Its metrics stay registered and
// its shared data and queues stay in the Host. Close is idempotent.
func (p *Plugin) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	p.cancel()
	p.wg.Wait()
	p.closeInstances()
	p.logLimit.close()
	err := p.compiled.Close(context.Background())
	p.host.forget(p)
	if err != nil {
		return pluginError(p.name, fmt.Errorf("close: %w", err))
	}
	return nil
}

// closeInstances kills and closes every instance in the slots.
func (p *Plugin) closeInstances() {
	for i := range p.slots {
		in := p.slots[i].inst.Swap(nil)
		if in == nil {
			continue
		}
		in.mu.Lock()
		in.dead.Store(true)
		in.stopAsync()
		in.mu.Unlock()
		in.close()
	}
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
