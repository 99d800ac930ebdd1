package wasm

import (
	"context"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// Host functions for logging, time, contexts, properties and shared data.

// levelOf maps a proxy_log_level_t to a slog level: trace is below debug,
// critical above error.
func levelOf(l uint32) slog.Level {
	switch l {
	case logTrace:
		return slog.LevelDebug - 4
	case logDebug:
		return slog.LevelDebug
	case logInfo:
		return slog.LevelInfo
	case logWarn:
		return slog.LevelWarn
	case logError:
		return slog.LevelError
	}
	return slog.LevelError + 4
}

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	level, msg := u32(stack[0]), a.bytes(1)
	switch {
	case a.refused():
	case level > logCritical:
		stack[0] = uint64(statusBadArgument)
	default:
		a.in.logMessage(levelOf(level), msg)
		stack[0] = uint64(statusOK)
	}
}

// logMessage logs a guest message with the plugin name and context id,
// within the plugin's log rate limit. A message below the logger's level
// returns before anything is copied and costs no token.
func (in *instance) logMessage(level slog.Level, msg []byte) {
	lg := in.p.log
	if !lg.Enabled(context.Background(), level) || !in.p.logLimit.allow() {
		return
	}
	id := uint64(rootContextID)
	if in.eff != nil {
		id = uint64(in.eff.id)
	}
	lg.LogAttrs(context.Background(), level, string(msg), slog.Uint64("context_id", id))
}

func hostGetLogLevel(ctx context.Context, mod api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	level := uint32(logCritical)
	for l := uint32(logTrace); l < logCritical; l++ {
		if in.p.log.Enabled(context.Background(), levelOf(l)) {
			level = l
			break
		}
	}
	stack[0] = uint64(accessStatus(writeGuestU32(in.memOf(mod), u32(stack[0]), level)))
}

func hostGetCurrentTime(ctx context.Context, mod api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	stack[0] = uint64(accessStatus(writeGuestU64(in.memOf(mod), u32(stack[0]), uint64(time.Now().UnixNano()))))
}

func hostSetTickPeriod(ctx context.Context, _ api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	in.setTickPeriod(time.Duration(u32(stack[0])) * time.Millisecond)
	stack[0] = uint64(statusOK)
}

// setEffective implements proxy_set_effective_context. Switching to
// another HTTP context on this instance is allowed only while that request
// is paused (Exchange.BeginAsync); it is undone when the callback returns.
func (in *instance) setEffective(id uint32) status {
	if id == rootContextID {
		in.endEffective()
		in.eff = nil
		return statusOK
	}
	if in.cur != nil && in.cur.id == id {
		in.endEffective()
		in.eff = in.cur
		return statusOK
	}
	s, ok := in.streams[id]
	if !ok {
		return statusBadArgument
	}
	if in.eff == s {
		return statusOK
	}
	in.endEffective()
	if !s.ex.BeginAsync() {
		in.eff = in.cur
		return statusBadArgument
	}
	in.eff, in.effAsync = s, true
	return statusOK
}

// endEffective releases a paused request borrowed by setEffective.
func (in *instance) endEffective() {
	if in.effAsync {
		in.eff.ex.EndAsync()
		in.effAsync = false
		in.eff = in.cur
	}
}

func hostSetEffectiveContext(ctx context.Context, _ api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	stack[0] = uint64(in.setEffective(u32(stack[0])))
}

// hostDone is proxy_done. The host never waits for a context after
// proxy_on_done (it finishes contexts at once), so nothing is ever pending.
func hostDone(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(statusNotFound)
}

func hostGetProperty(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	path := a.bytes(0)
	retPtr, retSize := a.retPair(2)
	if a.refused() {
		return
	}
	in := a.in
	name, ok := in.propertyName(path)
	if !ok {
		stack[0] = uint64(statusNotFound)
		return
	}
	prop := lookupProperty(name)
	v, st := in.p.getProperty(in.eff, prop, name, in.scratch[:0])
	if st == statusOK {
		if v.headers != nil {
			st = in.returnPairs(ctx, mod, v.headers, retPtr, retSize)
		} else {
			st = in.returnBytes(ctx, mod, v.data, retPtr, retSize)
		}
	}
	if prop == propUpstreams && cap(v.data) > cap(in.scratch) && cap(v.data) <= maxScratchKeep {
		in.scratch = v.data[:0] // keep the grown buffer: the snapshot is read per request
	}
	stack[0] = uint64(st)
}

// propertyName normalizes a property path the guest gave into the
// instance's path buffer (a view, valid until the next call), false for a
// malformed path.
func (in *instance) propertyName(path []byte) ([]byte, bool) {
	name, ok := normalizePropertyPath(in.pathBuf[:0], path)
	in.pathBuf = name[:0]
	return name, ok
}

func hostSetProperty(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	path, value := a.bytes(0), a.bytes(2)
	if a.refused() {
		return
	}
	name, ok := a.in.propertyName(path)
	if !ok {
		stack[0] = uint64(statusNotFound)
		return
	}
	stack[0] = uint64(a.in.p.setProperty(a.in.eff, lookupProperty(name), name, value))
}

func hostSetSharedData(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	key, value := a.bytes(0), a.bytes(2)
	if a.refused() {
		return
	}
	p := a.in.p
	stack[0] = uint64(p.shared.set(key, value, u32(stack[4]), p.sharedRules.policyFor(key)))
}

func hostGetSharedData(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	key := a.bytes(0)
	retPtr, retSize := a.retPair(2)
	retCAS := a.retU32(4)
	if a.refused() {
		return
	}
	in := a.in
	// Copy the value out under the store's lock: another instance may
	// replace it while the guest allocator runs.
	var (
		cas uint32
		ok  bool
	)
	in.scratch, cas, ok = in.p.shared.get(in.scratch[:0], key)
	if !ok {
		// NOT_FOUND still writes the creation CAS (a Sluice extension:
		// Envoy writes nothing there and SDKs ignore it on NOT_FOUND).
		if !writeGuestU32(a.mem, retCAS, cas) {
			stack[0] = uint64(statusInvalidMemoryAccess)
			return
		}
		stack[0] = uint64(statusNotFound)
		return
	}
	st := in.returnBytes(ctx, mod, in.scratch, retPtr, retSize)
	stack[0] = uint64(thenWriteU32(st, a.mem, retCAS, cas))
}
