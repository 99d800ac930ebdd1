package plugintest_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// miniHost is a deliberately small, test-only Proxy-Wasm host: just enough to
// prove that the guests and fixtures built here behave as documented. It is
// not the project's host (package wasm is); it implements the handful of
// host functions the C and AssemblyScript plugins use, answers every other
// function in hostFuncs with UNIMPLEMENTED, and records every host call.
// It is not safe for concurrent use.
type miniHost struct {
	tb       testing.TB
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	mod      api.Module
	nextID   uint32

	config      string      // PLUGIN_CONFIGURATION buffer
	body        string      // HTTP_REQUEST_BODY buffer (read-only here)
	reqHeaders  [][2]string // map 0
	respHeaders [][2]string // map 2
	local       *localReply // set by proxy_send_local_response
	calls       []hostCall
	logs        []string
}

type hostCall struct {
	name string
	args []uint32
	ret  uint32
}

type localReply struct {
	status        uint32
	details, body string
}

// hostOptions tune the runtime; zero values mean wazero's defaults.
type hostOptions struct {
	memoryLimitPages uint32
}

// callTimeout bounds every guest call the mini host makes.
const callTimeout = 10 * time.Second

// newMiniHost compiles the module at path in a fresh runtime with the env
// and wasi_unstable host modules registered. The runtime is closed by
// tb.Cleanup.
func newMiniHost(tb testing.TB, path string, opts hostOptions) *miniHost {
	tb.Helper()
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	if opts.memoryLimitPages > 0 {
		cfg = cfg.WithMemoryLimitPages(opts.memoryLimitPages)
	}
	h := &miniHost{tb: tb, rt: wazero.NewRuntimeWithConfig(ctx, cfg), nextID: 1,
		reqHeaders: [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "sluice.test"}}}
	tb.Cleanup(func() { h.rt.Close(ctx) })

	env := h.rt.NewHostModuleBuilder("env")
	names := make([]string, 0, len(hostFuncs))
	for name := range hostFuncs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		params := make([]api.ValueType, hostFuncs[name].params)
		for i := range params {
			params[i] = api.ValueTypeI32
		}
		env.NewFunctionBuilder().
			WithGoModuleFunction(h.hostFunction(name), params, []api.ValueType{api.ValueTypeI32}).
			Export(name)
	}
	if _, err := env.Instantiate(ctx); err != nil {
		tb.Fatalf("instantiating env: %v", err)
	}
	_, err := h.rt.NewHostModuleBuilder("wasi_unstable").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			panic(fmt.Sprintf("guest called proc_exit(%d)", api.DecodeU32(stack[0])))
		}), []api.ValueType{api.ValueTypeI32}, nil).
		Export("proc_exit").Instantiate(ctx)
	if err != nil {
		tb.Fatalf("instantiating wasi_unstable: %v", err)
	}

	wasm, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("reading guest: %v", err)
	}
	h.compiled, err = h.rt.CompileModule(ctx, wasm)
	if err != nil {
		tb.Fatalf("compiling %s: %v", path, err)
	}
	return h
}

// instantiate creates the guest instance and runs _initialize if exported.
func (h *miniHost) instantiate() error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	mod, err := h.rt.InstantiateModule(ctx, h.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return err
	}
	h.mod = mod
	if mod.ExportedFunction("_initialize") != nil {
		_, err = h.call("_initialize")
	}
	return err
}

// call invokes an exported guest function with a timeout.
func (h *miniHost) call(name string, args ...uint32) (uint32, error) {
	return h.callWithin(callTimeout, name, args...)
}

func (h *miniHost) callWithin(d time.Duration, name string, args ...uint32) (uint32, error) {
	fn := h.mod.ExportedFunction(name)
	if fn == nil {
		return 0, fmt.Errorf("guest does not export %s", name)
	}
	params := make([]uint64, len(args))
	for i, a := range args {
		params[i] = api.EncodeU32(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res, err := fn.Call(ctx, params...)
	if err != nil || len(res) == 0 {
		return 0, err
	}
	return api.DecodeU32(res[0]), nil
}

// mustCall is call that fails the test on error.
func (h *miniHost) mustCall(name string, args ...uint32) uint32 {
	h.tb.Helper()
	r, err := h.call(name, args...)
	if err != nil {
		h.tb.Fatalf("%s: %v", name, err)
	}
	return r
}

// start instantiates the guest and runs the root context lifecycle up to and
// including proxy_on_configure, whose result it returns.
func (h *miniHost) start() uint32 {
	h.tb.Helper()
	if err := h.instantiate(); err != nil {
		h.tb.Fatalf("instantiate: %v", err)
	}
	h.mustCall("proxy_on_context_create", 1, 0)
	if r := h.mustCall("proxy_on_vm_start", 1, 0); r != 1 {
		h.tb.Fatalf("proxy_on_vm_start returned %d, want 1", r)
	}
	return h.mustCall("proxy_on_configure", 1, uint32(len(h.config)))
}

// exchange runs one HTTP context through request and response headers and
// returns the request-headers action. The response phase is skipped when the
// request was paused.
func (h *miniHost) exchange(path string) uint32 {
	h.tb.Helper()
	h.nextID++
	id := h.nextID
	h.reqHeaders = [][2]string{{":method", "GET"}, {":path", path}, {":authority", "sluice.test"}}
	h.respHeaders = [][2]string{{":status", "200"}}
	h.local = nil
	h.mustCall("proxy_on_context_create", id, 1)
	action := h.mustCall("proxy_on_request_headers", id, uint32(len(h.reqHeaders)), 1)
	if action == 0 {
		h.callIfExported("proxy_on_response_headers", id, uint32(len(h.respHeaders)), 1)
	}
	h.callIfExported("proxy_on_done", id)
	h.callIfExported("proxy_on_log", id)
	h.callIfExported("proxy_on_delete", id)
	return action
}

// callIfExported is mustCall for an optional callback: a guest that does not
// export it is skipped, as the spec allows.
func (h *miniHost) callIfExported(name string, args ...uint32) {
	h.tb.Helper()
	if h.mod.ExportedFunction(name) != nil {
		h.mustCall(name, args...)
	}
}

// global returns the value of an exported i32 global.
func (h *miniHost) global(name string) (uint32, bool) {
	g := h.mod.ExportedGlobal(name)
	if g == nil {
		return 0, false
	}
	return api.DecodeU32(g.Get()), true
}

func (h *miniHost) hostFunction(name string) api.GoModuleFunc {
	n := hostFuncs[name].params
	return func(ctx context.Context, m api.Module, stack []uint64) {
		args := make([]uint32, n)
		for i := range args {
			args[i] = api.DecodeU32(stack[i])
		}
		ret := h.handle(ctx, m, name, args)
		h.calls = append(h.calls, hostCall{name: name, args: args, ret: ret})
		stack[0] = api.EncodeU32(ret)
	}
}

func (h *miniHost) handle(ctx context.Context, m api.Module, name string, a []uint32) uint32 {
	mem := m.Memory()
	read := func(ptr, size uint32) (string, bool) {
		if mem == nil {
			return "", false
		}
		b, ok := mem.Read(ptr, size)
		return string(b), ok
	}
	switch name {
	case "proxy_log":
		msg, ok := read(a[1], a[2])
		if !ok {
			return statusInvalidMemoryAccess
		}
		h.logs = append(h.logs, msg)
		return statusOK
	case "proxy_set_effective_context":
		return statusOK
	case "proxy_get_buffer_bytes":
		var buf string
		switch a[0] {
		case 0:
			buf = h.body
		case 7:
			buf = h.config
		default:
			return statusNotFound
		}
		start, max := uint64(a[1]), uint64(a[2])
		if start > uint64(len(buf)) {
			return statusBadArgument
		}
		end := min(start+max, uint64(len(buf)))
		return h.writeOut(ctx, m, buf[start:end], a[3], a[4])
	case "proxy_get_property":
		path, ok := read(a[0], a[1])
		if !ok {
			return statusInvalidMemoryAccess
		}
		if path != "plugin_root_id" {
			return statusNotFound
		}
		return h.writeOut(ctx, m, "", a[2], a[3])
	case "proxy_get_header_map_value":
		hdrs := h.headerMap(a[0])
		if hdrs == nil {
			return statusBadArgument
		}
		key, ok := read(a[1], a[2])
		if !ok {
			return statusInvalidMemoryAccess
		}
		for _, kv := range *hdrs {
			if kv[0] == key {
				return h.writeOut(ctx, m, kv[1], a[3], a[4])
			}
		}
		return statusNotFound
	case "proxy_add_header_map_value":
		hdrs := h.headerMap(a[0])
		if hdrs == nil {
			return statusBadArgument
		}
		key, ok1 := read(a[1], a[2])
		val, ok2 := read(a[3], a[4])
		if !ok1 || !ok2 {
			return statusInvalidMemoryAccess
		}
		*hdrs = append(*hdrs, [2]string{key, val})
		return statusOK
	case "proxy_send_local_response":
		details, ok1 := read(a[1], a[2])
		body, ok2 := read(a[3], a[4])
		_, ok3 := read(a[5], a[6])
		if !ok1 || !ok2 || !ok3 {
			return statusInvalidMemoryAccess
		}
		h.local = &localReply{status: a[0], details: details, body: body}
		return statusOK
	}
	return statusUnimplemented
}

func (h *miniHost) headerMap(id uint32) *[][2]string {
	switch id {
	case 0:
		return &h.reqHeaders
	case 2:
		return &h.respHeaders
	}
	return nil
}

// writeOut copies data into guest memory obtained from the guest allocator
// and stores its address and length at retPtr and retSize. A trap in the
// allocator is re-raised so that the guest's callback fails with it.
func (h *miniHost) writeOut(ctx context.Context, m api.Module, data string, retPtr, retSize uint32) uint32 {
	mem := m.Memory()
	var p uint32
	if len(data) > 0 {
		alloc := m.ExportedFunction("proxy_on_memory_allocate")
		if alloc == nil {
			alloc = m.ExportedFunction("malloc")
		}
		if alloc == nil {
			return statusInternalFailure
		}
		res, err := alloc.Call(ctx, uint64(len(data)))
		if err != nil {
			panic(err)
		}
		p = api.DecodeU32(res[0])
		if p == 0 {
			return statusInternalFailure
		}
		if !mem.WriteString(p, data) {
			return statusInvalidMemoryAccess
		}
	}
	if !mem.WriteUint32Le(retPtr, p) || !mem.WriteUint32Le(retSize, uint32(len(data))) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

// header returns the first value of key in hdrs.
func header(hdrs [][2]string, key string) (string, bool) {
	for _, kv := range hdrs {
		if kv[0] == key {
			return kv[1], true
		}
	}
	return "", false
}
