package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// rootContextID is the root (plugin) context of every instance; HTTP
// contexts count up from rootContextID+1.
const rootContextID = 1

// instance is one instantiated guest module. It runs one callback at a
// time (mu); a request's HTTP context stays on one instance for its whole
// life. An instance that traps, times out or runs out of memory is marked
// dead, never called again, and replaced in the background.
type instance struct {
	p *Plugin
	// slot is the instance's index in p.slots, -1 while it is the spare.
	// Guarded by p.poolMu.
	slot  int
	mod   api.Module
	mem   api.Memory
	fns   [numCallbacks]api.Function
	alloc api.Function

	// mu serialises calls into the guest. Fields below it are guarded by
	// mu (host functions run on the goroutine holding it).
	mu   sync.Mutex
	dead atomic.Bool
	// deathReason is why the instance was discarded (a Kind*, or
	// ReasonClosed); set with dead, under mu.
	deathReason string

	cc     callCtx
	dl     deadline // bounds each call (CPU time; see deadline)
	limit  *limitedMemory
	stack  []uint64
	astack []uint64

	nextID  uint32
	streams map[uint32]*stream // live HTTP contexts by id

	phase     callback // callback running (or last run)
	cur       *stream  // HTTP context whose callback runs; nil: root context
	eff       *stream  // effective context (proxy_set_effective_context)
	effAsync  bool     // eff != cur and eff.ex.BeginAsync succeeded
	allocBusy bool     // inside the guest allocator: no nested allocation
	nestedErr error    // a call into the guest from a host function failed
	expired   bool     // the deadline fired after a call completed
	starting  bool     // newInstance is running the start-up calls

	// tickPeriod is the period this instance asked for with
	// proxy_set_tick_period_milliseconds (0: none). Written under mu,
	// read by the plugin's tick driver without it.
	tickPeriod atomic.Int64

	callouts   map[uint32]*callout // HTTP calls in flight, by call id
	nextCallID uint32
	callout    *callout // the call whose proxy_on_http_call_response runs

	scratch      []byte
	prefix       prefixMatch // sluice.prompt_prefix_match's, for _record
	pathBuf      []byte
	localHeaders proxy.Headers
	out, errOut  logWriter
}

// callCtx is the context.Context of every call into one instance, reused
// across calls so that a call allocates no context. It is never done (Done
// is nil, Err nil): a call that overruns its budget is stopped through
// fired, which the guest's next sluice.yield sees (see addStopChecks and
// deadline), not through the context. Host functions find their instance
// through it.
type callCtx struct {
	inst  *instance
	fired atomic.Bool
}

type callCtxKey struct{}

func (c *callCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *callCtx) Done() <-chan struct{}       { return nil }
func (c *callCtx) Err() error                  { return nil }
func (c *callCtx) Value(key any) any {
	if key == (callCtxKey{}) {
		return c
	}
	return nil
}

// fire stops the running call at its next yield (called by the deadline,
// from its timer's goroutine). It is never undone: the instance is
// discarded.
func (c *callCtx) fire() { c.fired.Store(true) }

// errStopped is the panic with which sluice.yield ends a call whose
// deadline fired; wazero returns it as the call's error.
var errStopped = errors.New("wasm: call stopped by its deadline")

// hostYield is sluice.yield, the host function the stop checks call every
// yieldEvery loop iterations (see addStopChecks): it lets the deadline
// start counting CPU time, and ends the call if the deadline fired.
func hostYield(ctx context.Context, _ api.Module, _ []uint64) {
	in := instanceOf(ctx)
	if in == nil {
		return
	}
	in.dl.yield()
	if in.cc.fired.Load() {
		panic(errStopped)
	}
}

// instanceOf returns the instance a host function was called from.
func instanceOf(ctx context.Context) *instance {
	if cc, ok := ctx.(*callCtx); ok {
		return cc.inst
	}
	if cc, ok := ctx.Value(callCtxKey{}).(*callCtx); ok {
		return cc.inst
	}
	return nil
}

// limitedMemory backs an instance's linear memory and enforces the
// plugin's memory limit: growing past it fails (memory.grow returns -1)
// and is recorded, so a crash that follows is reported as kind "memory".
type limitedMemory struct {
	buf       []byte
	limit     uint64
	exhausted atomic.Bool
}

func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.exhausted.Store(true)
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	newCap := max(size, min(2*uint64(cap(m.buf)), m.limit))
	nb := make([]byte, size, newCap)
	copy(nb, m.buf)
	m.buf = nb
	return nb
}

func (m *limitedMemory) Free() { m.buf = nil }

// newInstance instantiates the plugin's module, runs its start function and
// creates the root context (proxy_on_context_create, proxy_on_vm_start,
// proxy_on_configure). Each step is bounded by the host's start timeout.
func (p *Plugin) newInstance(ctx context.Context, slot int) (*instance, error) {
	in := &instance{
		p:        p,
		slot:     slot,
		stack:    make([]uint64, 5),
		astack:   make([]uint64, 1),
		nextID:   rootContextID,
		streams:  make(map[uint32]*stream),
		callouts: make(map[uint32]*callout),
		limit:    &limitedMemory{limit: p.memLimit},
		scratch:  make([]byte, 0, 256),
		pathBuf:  make([]byte, 0, 64),
	}
	in.cc.inst = in
	in.dl.init(&in.cc)
	in.out = logWriter{log: p.log, level: levelOf(logInfo), stream: "stdout", limit: p.logLimit}
	in.errOut = logWriter{log: p.log, level: levelOf(logError), stream: "stderr", limit: p.logLimit}

	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithStdout(&in.out).
		WithStderr(&in.errOut).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime()
	for _, kv := range p.env {
		cfg = cfg.WithEnv(kv[0], kv[1])
	}
	ictx := experimental.WithMemoryAllocator(&in.cc, experimental.MemoryAllocatorFunc(
		func(capacity, _ uint64) experimental.LinearMemory {
			in.limit.buf = make([]byte, 0, min(capacity, in.limit.limit))
			return in.limit
		}))
	in.mu.Lock()
	defer in.mu.Unlock()
	// No guest code runs here: addStopChecks moved the start section to an
	// export that start calls under the deadline.
	mod, err := p.host.rt.InstantiateModule(ictx, p.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", in.describe(err))
	}
	in.mod = mod
	in.mem = mod.Memory()
	for cb := range numCallbacks {
		in.fns[cb] = mod.ExportedFunction(callbackSpecs[cb].name)
	}
	in.alloc = mod.ExportedFunction(p.info.alloc)
	in.starting = true
	err = in.start()
	in.starting = false
	if err != nil {
		in.dead.Store(true)
		in.stopAsync()
		in.close()
		var ce *CallError
		if errors.As(err, &ce) {
			err = fmt.Errorf("%s: %s: %w", ce.Callback, ce.Kind, ce.Err)
		}
		return nil, err
	}
	return in, nil
}

// start runs the module's start function and the root context's lifecycle.
func (in *instance) start() error {
	p := in.p
	if p.info.startSection {
		if err := in.callExport(startExport); err != nil {
			return err
		}
	}
	if p.info.initialize {
		if err := in.callExport(exportInitialize); err != nil {
			return err
		}
		if p.info.main {
			if err := in.callExport(exportMain); err != nil {
				return err
			}
		}
	} else if p.info.start {
		if err := in.callExport(exportStart); err != nil {
			return err
		}
	}
	if _, err := in.call(cbContextCreate, nil, rootContextID, 0, 0, p.host.startTimeout); err != nil {
		return err
	}
	// proxy_on_vm_start, then proxy_on_configure, each given the size of
	// its buffer; a false return rejects the plugin.
	for _, step := range []struct {
		cb       callback
		size     int
		rejected string
	}{
		{cbVMStart, len(p.vmConfig), "proxy_on_vm_start returned false: the plugin rejected its vm_config"},
		{cbConfigure, len(p.config), "proxy_on_configure returned false: the plugin rejected its configuration"},
	} {
		if in.fns[step.cb] == nil {
			continue
		}
		ok, err := in.call(step.cb, nil, rootContextID, uint64(step.size), 0, p.host.startTimeout)
		if err != nil {
			return err
		}
		if uint32(ok) == 0 {
			return errors.New(step.rejected)
		}
	}
	return nil
}

// callExport calls a start-up export by name with zero arguments (main
// gets argc = 0, argv = 0) and ignores its result.
func (in *instance) callExport(name string) error {
	fn := in.mod.ExportedFunction(name)
	clear(in.stack)
	err := in.invoke(fn, monoNow(), in.p.host.startTimeout)
	if err == nil && in.nestedErr != nil {
		err = in.nestedErr
	}
	if err != nil {
		var ee *sys.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 0 && !in.cc.fired.Load() {
			return fmt.Errorf("%s exited: the module is a command, not a reactor (build Go guests with -buildmode=c-shared)", exportLabel(name))
		}
		return fmt.Errorf("%s: %w", exportLabel(name), in.describe(err))
	}
	return nil
}

// exportLabel names a start-up export in errors.
func exportLabel(name string) string {
	if name == startExport {
		return "start function"
	}
	return name
}

// invoke calls fn with in.stack under the deadline: timeout is its CPU
// budget (see deadline), start the call's monoNow(). in.mu must be held.
func (in *instance) invoke(fn api.Function, start, timeout time.Duration) error {
	in.nestedErr = nil
	in.dl.begin(start, timeout)
	err := fn.CallWithStack(&in.cc, in.stack)
	in.dl.end()
	if in.cc.fired.Load() {
		// The deadline stopped the guest, or fired just as the call
		// returned: fired stays set (every later yield would panic), so
		// the instance must go.
		in.expired = true
	}
	return err
}

// call runs callback cb for the context cur (nil: the root context) with
// up to three arguments. in.mu must be held. It returns the callback's
// result (0 when it returns nothing or is not exported). On failure the
// instance is retired and the error is a *CallError.
func (in *instance) call(cb callback, cur *stream, a0, a1, a2 uint64, timeout time.Duration) (uint64, error) {
	return in.callArgs(cb, cur, [5]uint64{a0, a1, a2}, timeout)
}

// callArgs is call with up to five arguments (proxy_on_http_call_response
// takes five).
func (in *instance) callArgs(cb callback, cur *stream, args [5]uint64, timeout time.Duration) (uint64, error) {
	res, _, err := in.callAt(cb, cur, args, timeout, monoNow())
	return res, err
}

// callAt is callArgs for a call starting at start (monoNow()); it returns
// the monotonic time at which the call ended, so that callbacks run back
// to back (OnDone's three) share one clock reading between them (a read
// costs about 35 ns here, a tenth of an empty callback).
func (in *instance) callAt(cb callback, cur *stream, args [5]uint64, timeout, start time.Duration) (uint64, time.Duration, error) {
	fn := in.fns[cb]
	if fn == nil {
		return 0, start, nil
	}
	in.phase, in.cur, in.eff = cb, cur, cur
	if cur != nil {
		cur.phase = cb
	}
	st := in.stack
	copy(st, args[:])
	err := in.invoke(fn, start, timeout)
	end := monoNow()
	in.p.metrics.duration.Update((end - start).Seconds())
	in.endEffective()
	in.cur, in.eff = nil, nil
	if err == nil && in.nestedErr != nil {
		err = in.nestedErr
	}
	if err != nil {
		kind := in.kindOf(err)
		in.p.metrics.errorsOf(kind).Inc()
		in.retire(kind)
		return 0, end, &CallError{Plugin: in.p.name, Callback: cb.String(), Kind: kind, Err: in.describe(err)}
	}
	if in.expired {
		in.retire(KindTimeout)
	}
	return st[0], end, nil
}

// kindOf classifies a failed call.
func (in *instance) kindOf(err error) string {
	switch {
	case in.cc.fired.Load():
		return KindTimeout
	case in.limit.exhausted.Load():
		return KindMemory
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		return KindExit
	}
	return KindTrap
}

// describe turns wazero's error for a failed call into a readable one.
func (in *instance) describe(err error) error {
	switch {
	case in.cc.fired.Load():
		return fmt.Errorf("call exceeded its deadline: %w", context.DeadlineExceeded)
	case in.limit.exhausted.Load():
		return fmt.Errorf("guest ran out of memory (limit %d bytes): %w", in.limit.limit, err)
	}
	return err
}

// stopAsync ends the instance's asynchronous work: it leaves the tick
// rotation and its HTTP calls in flight are cancelled (their goroutines
// then find it dead and drop the replies). in.mu must be held.
func (in *instance) stopAsync() {
	in.tickPeriod.Store(0)
	for _, c := range in.callouts {
		c.cancel()
	}
}

// retire marks the instance dead for reason (the failure's kind) and,
// unless it is still starting (then its creator reports the failure),
// asks the plugin to replace it (see replace). in.mu must be held.
func (in *instance) retire(reason string) {
	if !in.strand(reason) {
		return
	}
	in.stopAsync()
	if !in.starting {
		in.p.replace(in)
	}
}

// close releases the module. The instance must be dead or never published.
func (in *instance) close() {
	in.dl.stop()
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
}

// memOf returns the guest memory a host function works on.
func (in *instance) memOf(mod api.Module) guestMemory {
	if in.mem != nil {
		return in.mem
	}
	if m := mod.Memory(); m != nil {
		return m
	}
	return nil
}

// allocate reserves size bytes in guest memory with the guest's allocator
// (proxy_on_memory_allocate, else malloc).
func (in *instance) allocate(ctx context.Context, mod api.Module, size uint32) (uint32, status) {
	fn := in.alloc
	if fn == nil && in.mod == nil {
		fn = mod.ExportedFunction(in.p.info.alloc)
	}
	if fn == nil || in.allocBusy {
		return 0, statusInternalFailure
	}
	in.allocBusy = true
	in.astack[0] = uint64(size)
	err := fn.CallWithStack(ctx, in.astack)
	in.allocBusy = false
	if err != nil {
		if in.nestedErr == nil {
			in.nestedErr = fmt.Errorf("%s: %w", in.p.info.alloc, err)
		}
		return 0, statusInternalFailure
	}
	ptr := uint32(in.astack[0])
	if ptr == 0 {
		return 0, statusInternalFailure
	}
	mem := in.memOf(mod)
	if mem == nil || !inBounds(mem.Size(), ptr, size) {
		return 0, statusInvalidMemoryAccess
	}
	return ptr, statusOK
}

// allocateView is allocate followed by a view of the n bytes it reserved
// (a view, not a copy; invalid after the guest's memory grows).
func (in *instance) allocateView(ctx context.Context, mod api.Module, n uint32) (uint32, []byte, status) {
	ptr, st := in.allocate(ctx, mod, n)
	if st != statusOK {
		return 0, nil, st
	}
	buf, ok := readGuest(in.memOf(mod), ptr, n)
	if !ok {
		return 0, nil, statusInvalidMemoryAccess
	}
	return ptr, buf, statusOK
}

// returnBytes copies data into newly allocated guest memory and stores its
// address and size at retPtr and retSize. data must not point into guest
// memory (the allocation may move it).
func (in *instance) returnBytes(ctx context.Context, mod api.Module, data []byte, retPtr, retSize uint32) status {
	mem := in.memOf(mod)
	if !checkRetPair(mem, retPtr, retSize) {
		return statusInvalidMemoryAccess
	}
	if len(data) == 0 {
		return writeRetPair(mem, retPtr, retSize, 0, 0)
	}
	if uint64(len(data)) > maxPairsSize {
		return statusInternalFailure
	}
	n := uint32(len(data))
	ptr, buf, st := in.allocateView(ctx, mod, n)
	if st != statusOK {
		return st
	}
	copy(buf, data)
	return writeRetPair(mem, retPtr, retSize, ptr, n)
}

// returnPairs serialises h into newly allocated guest memory.
func (in *instance) returnPairs(ctx context.Context, mod api.Module, h *proxy.Headers, retPtr, retSize uint32) status {
	mem := in.memOf(mod)
	if !checkRetPair(mem, retPtr, retSize) {
		return statusInvalidMemoryAccess
	}
	if h == nil || h.Len() == 0 {
		return writeRetPair(mem, retPtr, retSize, 0, 0)
	}
	n, ok := pairsSize(h)
	if !ok {
		return statusSerializationFailed
	}
	ptr, buf, st := in.allocateView(ctx, mod, n)
	if st != statusOK {
		return st
	}
	encodePairs(buf, h)
	return writeRetPair(mem, retPtr, retSize, ptr, n)
}
