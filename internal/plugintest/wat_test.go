package plugintest_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-proxy/sluice/internal/plugintest"
)

// TestFixturesUpToDate rebuilds every hostile .wat with wat2wasm and checks
// that the committed .wasm beside it has the same bytes.
func TestFixturesUpToDate(t *testing.T) {
	plugintest.CheckWatFixtures(t, plugintest.FixtureDir(t))
}

func TestFixture(t *testing.T) {
	p := plugintest.Fixture(t, "ok")
	if !filepath.IsAbs(p) || filepath.Base(p) != "ok.wasm" {
		t.Errorf("Fixture(ok) = %q, want an absolute path to ok.wasm", p)
	}
	for _, bad := range []string{"", "ok.wasm", "../hostile/ok", "no_such_fixture"} {
		ft := &fakeTB{TB: t}
		ft.run(func() { plugintest.Fixture(ft, bad) })
		if !ft.failed || !strings.Contains(ft.msg, "Fixture(") {
			t.Errorf("Fixture(%q): failed=%v msg=%q; want a failure naming the call", bad, ft.failed, ft.msg)
		}
	}
	ft := &fakeTB{TB: t}
	ft.run(func() { plugintest.Fixture(ft, "no_such_fixture") })
	if !strings.Contains(ft.msg, "oob_log") {
		t.Errorf("unknown fixture: message %q does not list the known fixtures", ft.msg)
	}
}

// TestFixtureShapes checks every fixture's exports and imports against the
// v0.2.1 signatures, then runs it in the mini host to prove it misbehaves
// exactly as its name and README row say.
func TestFixtureShapes(t *testing.T) {
	names, err := plugintest.FixtureNames(plugintest.FixtureDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			path := plugintest.Fixture(t, name)
			checkFixtureSignatures(t, name, path)
			checkFixtureBehaviour(t, name, path)
		})
	}
}

func checkFixtureSignatures(t *testing.T, name, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, data)
	if err != nil {
		t.Fatalf("wazero cannot compile: %v", err)
	}

	var abis []string
	for export, def := range compiled.ExportedFunctions() {
		if strings.HasPrefix(export, "proxy_abi_version_") {
			abis = append(abis, export)
		}
		sig, known := callbacks[export]
		if !known {
			continue
		}
		match := len(def.ParamTypes()) == sig.params && len(def.ResultTypes()) == sig.results
		if wantBad := name == "bad_signature" && export == "proxy_on_request_headers"; match == wantBad {
			t.Errorf("export %s: %d params, %d results; spec says %d, %d",
				export, len(def.ParamTypes()), len(def.ResultTypes()), sig.params, sig.results)
		}
	}
	wantABI := map[string]string{"no_abi_version": "", "abi_0_1_0": "proxy_abi_version_0_1_0",
		"ok_abi_0_2_0": "proxy_abi_version_0_2_0"}
	want, special := wantABI[name]
	if !special {
		want = "proxy_abi_version_0_2_1"
	}
	if got := strings.Join(abis, ","); got != want {
		t.Errorf("ABI markers %q, want %q", got, want)
	}

	_, hasMemory := compiled.ExportedMemories()["memory"]
	if hasMemory == (name == "no_memory") {
		t.Errorf("memory exported: %v", hasMemory)
	}
	_, hasCreate := compiled.ExportedFunctions()["proxy_on_context_create"]
	if hasCreate == (name == "no_context_create") {
		t.Errorf("proxy_on_context_create exported: %v", hasCreate)
	}

	for _, imp := range compiled.ImportedFunctions() {
		module, fn, _ := imp.Import()
		hf, known := hostFuncs[fn]
		switch {
		case module != "env":
			t.Errorf("imports %s.%s; fixtures import only from env", module, fn)
		case name == "bad_import" && fn == "proxy_does_not_exist":
		case !known:
			t.Errorf("imports env.%s, which is not a v0.2.1 host function", fn)
		case (len(imp.ParamTypes()) == hf.params) == (name == "bad_import_signature"):
			t.Errorf("env.%s imported with %d params; spec has %d", fn, len(imp.ParamTypes()), hf.params)
		}
	}
}

// bodyCallers are the oob fixtures that misbehave in proxy_on_request_body.
var bodyCallers = []string{"oob_get_buffer_bytes", "oob_set_buffer_bytes", "oob_get_buffer_status"}

// lifecycle is the order in which trap fixtures are driven.
var lifecycle = []struct {
	step, fn string
	args     []uint32
}{
	{"initialize", "_initialize", nil},
	{"root_context_create", "proxy_on_context_create", []uint32{1, 0}},
	{"vm_start", "proxy_on_vm_start", []uint32{1, 0}},
	{"configure", "proxy_on_configure", []uint32{1, 0}},
	{"context_create", "proxy_on_context_create", []uint32{2, 1}},
	{"request_headers", "proxy_on_request_headers", []uint32{2, 3, 0}},
	{"request_body", "proxy_on_request_body", []uint32{2, 5, 1}},
	{"response_headers", "proxy_on_response_headers", []uint32{2, 1, 0}},
	{"response_body", "proxy_on_response_body", []uint32{2, 5, 1}},
	{"done", "proxy_on_done", []uint32{2}},
	{"log", "proxy_on_log", []uint32{2}},
	{"delete", "proxy_on_delete", []uint32{2}},
}

// started is a mini host on the fixture at path whose configure returned 1.
func started(t *testing.T, path string) *miniHost {
	t.Helper()
	h := newMiniHost(t, path, hostOptions{})
	if r := h.start(); r != 1 {
		t.Fatalf("configure returned %d", r)
	}
	return h
}

// exchangeOK runs one request for / through h and checks that the fixture
// continued it and set x-wat: ok.
func exchangeOK(t *testing.T, h *miniHost) {
	t.Helper()
	if a := h.exchange("/"); a != 0 {
		t.Errorf("action %d, want 0", a)
	}
	if v, _ := header(h.reqHeaders, "x-wat"); v != "ok" {
		t.Errorf("x-wat = %q, want ok", v)
	}
}

func checkFixtureBehaviour(t *testing.T, name, path string) {
	const limitPages = 16
	switch {
	case name == "ok" || name == "ok_abi_0_2_0":
		h := started(t, path)
		exchangeOK(t, h)
		if s, _ := h.global("status"); s != statusOK {
			t.Errorf("status global %d, want 0", s)
		}

	case strings.HasPrefix(name, "oob_"):
		h := started(t, path)
		if s, _ := h.global("status"); s != 0xFFFFFFFF {
			t.Errorf("status global starts at %d, want -1", s)
		}
		h.mustCall("proxy_on_context_create", 2, 1)
		fn := "proxy_on_request_headers"
		if slices.Contains(bodyCallers, name) {
			if a := h.mustCall(fn, 2, 3, 0); a != 0 || len(h.calls) != 0 {
				t.Errorf("request headers: action %d, %d host calls; want 0, 0", a, len(h.calls))
			}
			fn = "proxy_on_request_body"
		}
		if a := h.mustCall(fn, 2, 5, 1); a != 0 {
			t.Errorf("%s returned %d, want 0", fn, a)
		}
		if len(h.calls) != 1 {
			t.Fatalf("%d host calls, want exactly 1: %+v", len(h.calls), h.calls)
		}
		c := h.calls[0]
		if !outOfBounds(hostFuncs[c.name], c.args, h.mod.Memory().Size()) {
			t.Errorf("%s%v addresses no memory outside the %d-byte memory", c.name, c.args, h.mod.Memory().Size())
		}
		if s, ok := h.global("status"); !ok || s != c.ret {
			t.Errorf("status global %d (exported %v), want the host's return %d", s, ok, c.ret)
		}

	case strings.HasPrefix(name, "bad_pairs_"):
		h := newMiniHost(t, path, hostOptions{})
		h.start()
		h.exchange("/")
		if len(h.calls) != 1 || h.calls[0].name != "proxy_set_header_map_pairs" {
			t.Fatalf("host calls %+v, want one proxy_set_header_map_pairs", h.calls)
		}
		a := h.calls[0].args
		data, ok := h.mod.Memory().Read(a[1], a[2])
		if !ok {
			t.Fatalf("buffer %d+%d is out of bounds; this fixture must be in bounds", a[1], a[2])
		}
		if !pairsMalformed(data) {
			t.Errorf("serialized map % x is well-formed", data)
		}

	case name == "alloc_zero" || name == "alloc_oob":
		h := newMiniHost(t, path, hostOptions{})
		h.start()
		p := h.mustCall("proxy_on_memory_allocate", 16)
		if name == "alloc_zero" && p != 0 || name == "alloc_oob" && p < h.mod.Memory().Size() {
			t.Errorf("allocate(16) = %#x", p)
		}
		h.exchange("/")
		if s, _ := h.global("status"); len(h.calls) != 1 || s != h.calls[0].ret || s == statusOK {
			t.Errorf("status %d after calls %+v; want the host's non-OK return", s, h.calls)
		}

	case name == "trap_memory_allocate":
		h := newMiniHost(t, path, hostOptions{})
		h.start()
		if _, err := h.call("proxy_on_memory_allocate", 16); err == nil {
			t.Error("allocate did not trap")
		}
		h.mustCall("proxy_on_context_create", 2, 1)
		if _, err := h.call("proxy_on_request_headers", 2, 3, 0); err == nil {
			t.Error("request headers did not fail with the allocator's trap")
		}

	case name == "membomb" || name == "membomb_alloc":
		h := newMiniHost(t, path, hostOptions{memoryLimitPages: limitPages})
		h.start()
		h.mustCall("proxy_on_context_create", 2, 1)
		if _, err := h.call("proxy_on_request_headers", 2, 3, 0); err == nil {
			t.Error("request headers returned normally")
		}
		if got := h.mod.Memory().Size(); got != limitPages*65536 {
			t.Errorf("memory is %d bytes after the bomb, want the %d-page limit", got, limitPages)
		}

	case name == "loop" || name == "loop_configure":
		h := newMiniHost(t, path, hostOptions{})
		if err := h.instantiate(); err != nil {
			t.Fatal(err)
		}
		h.mustCall("proxy_on_context_create", 1, 0)
		h.mustCall("proxy_on_vm_start", 1, 0)
		fn, args := "proxy_on_configure", []uint32{1, 0}
		if name == "loop" {
			h.mustCall(fn, args...)
			h.mustCall("proxy_on_context_create", 2, 1)
			fn, args = "proxy_on_request_headers", []uint32{2, 3, 0}
		}
		const d = 100 * time.Millisecond
		start := time.Now()
		if _, err := h.callWithin(d, fn, args...); err == nil {
			t.Errorf("%s returned", fn)
		}
		if el := time.Since(start); el < d {
			t.Errorf("%s stopped after %v, before the %v deadline", fn, el, d)
		}

	case name == "recurse_fanout" || name == "recurse_mutual" || name == "recurse_indirect":
		// With 2 headers the depth is 16: 2^17 - 1 calls, counted in
		// "status". (A real request's 4 pseudo-headers make it 2^33,
		// which wazero's own close-on-context-done, checking loops only,
		// cannot stop: the Sluice host's entry checks do.)
		h := started(t, path)
		h.mustCall("proxy_on_context_create", 2, 1)
		if a := h.mustCall("proxy_on_request_headers", 2, 2, 0); a != 0 {
			t.Errorf("action %d, want 0", a)
		}
		if got, _ := h.global("status"); got != 1<<17-1 {
			t.Errorf("status = %d calls, want %d", got, 1<<17-1)
		}

	case name == "conditional_trap":
		h := started(t, path)
		exchangeOK(t, h)
		h.mustCall("proxy_on_context_create", 9, 1)
		h.reqHeaders = append(h.reqHeaders, [2]string{"x-trap", "1"})
		if _, err := h.call("proxy_on_request_headers", 9, uint32(len(h.reqHeaders)), 1); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("proxy_on_request_headers with x-trap = %v, want a trap", err)
		}

	case name == "recurse_deep":
		h := started(t, path)
		h.mustCall("proxy_on_context_create", 2, 1)
		if _, err := h.callWithin(time.Minute, "proxy_on_request_headers", 2, 1, 0); err == nil || !strings.Contains(err.Error(), "stack overflow") {
			t.Errorf("proxy_on_request_headers = %v, want a stack overflow", err)
		}

	case strings.HasPrefix(name, "trap_"):
		h := newMiniHost(t, path, hostOptions{})
		inst, err := h.rt.InstantiateModule(context.Background(), h.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		h.mod = inst
		want := strings.TrimPrefix(name, "trap_")
		failed := ""
		for _, s := range lifecycle {
			if inst.ExportedFunction(s.fn) == nil {
				continue
			}
			if _, err := h.call(s.fn, s.args...); err != nil {
				failed = s.step
				break
			}
		}
		if failed != want {
			t.Errorf("first failing step %q, want %q", failed, want)
		}

	case name == "configure_false":
		h := newMiniHost(t, path, hostOptions{})
		if r := h.start(); r != 0 {
			t.Errorf("configure returned %d, want 0", r)
		}

	case name == "bad_import" || name == "bad_import_signature":
		h := newMiniHost(t, path, hostOptions{})
		err := h.instantiate()
		want := map[string]string{"bad_import": "proxy_does_not_exist", "bad_import_signature": "proxy_log"}[name]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("instantiate: %v; want an error naming %s", err, want)
		}

	case name == "no_abi_version" || name == "abi_0_1_0" || name == "no_context_create" ||
		name == "no_memory" || name == "bad_signature":
		// Load-time rejections: checkFixtureSignatures covered their shape;
		// they must still instantiate, so only the host's checks reject them.
		h := newMiniHost(t, path, hostOptions{})
		if err := h.instantiate(); err != nil {
			t.Errorf("instantiate: %v", err)
		}

	default:
		t.Errorf("fixture %s has no self-test; add a case to checkFixtureBehaviour", name)
	}
}

// outOfBounds reports whether any memory region of a call to hf reaches
// outside a memory of size bytes.
func outOfBounds(hf hostFunc, args []uint32, size uint32) bool {
	for _, r := range hf.in {
		if uint64(args[r[0]])+uint64(args[r[1]]) > uint64(size) {
			return true
		}
	}
	for _, r := range hf.out {
		if uint64(args[r[0]])+uint64(r[1]) > uint64(size) {
			return true
		}
	}
	return false
}

// pairsMalformed reports whether data is not a valid serialized v0.2.1 map
// (u32 count, count × (u32 key_len, u32 value_len), NUL-terminated strings).
func pairsMalformed(data []byte) bool {
	if len(data) < 4 {
		return true
	}
	n := uint64(binary.LittleEndian.Uint32(data))
	need := 4 + 8*n
	if need > uint64(len(data)) {
		return true
	}
	for i := uint64(0); i < n; i++ {
		off := 4 + 8*i
		need += uint64(binary.LittleEndian.Uint32(data[off:])) + 1
		need += uint64(binary.LittleEndian.Uint32(data[off+4:])) + 1
		if need > uint64(len(data)) {
			return true
		}
	}
	return false
}
