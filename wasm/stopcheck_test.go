package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestAddStopChecksKeepsSemantics runs testdata/stopcheck/rewrite.wasm
// before and after the rewrite: same results, same export names and debug
// names, the start function moved to startExport, and yields at the
// expected rate.
func TestAddStopChecksKeepsSemantics(t *testing.T) {
	orig, err := os.ReadFile("testdata/stopcheck/rewrite.wasm")
	if err != nil {
		t.Fatal(err)
	}
	rewritten, err := addStopChecks(orig)
	if err != nil {
		t.Fatalf("addStopChecks: %v", err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	i32 := []api.ValueType{api.ValueTypeI32}
	if _, err := rt.NewHostModuleBuilder("test").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			s[0] = uint64(uint32(s[0]) + 1)
		}), i32, i32).Export("add1").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	var yields int
	if _, err := rt.NewHostModuleBuilder(yieldModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) { yields++ }), nil, nil).
		Export(yieldName).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}

	mo, err := rt.InstantiateWithConfig(ctx, orig, wazero.NewModuleConfig().WithName("orig"))
	if err != nil {
		t.Fatal(err)
	}
	mr, err := rt.InstantiateWithConfig(ctx, rewritten, wazero.NewModuleConfig().WithName("rewritten"))
	if err != nil {
		t.Fatalf("instantiating the rewritten module: %v", err)
	}
	if got := mo.ExportedGlobal("started").Get(); got != 1 {
		t.Fatalf("original: started = %d after instantiation, want 1", got)
	}
	if got := mr.ExportedGlobal("started").Get(); got != 0 {
		t.Fatalf("rewritten: started = %d after instantiation, want 0 (start section removed)", got)
	}
	if _, err := mr.ExportedFunction(startExport).Call(ctx); err != nil {
		t.Fatalf("calling %s: %v", startExport, err)
	}
	if got := mr.ExportedGlobal("started").Get(); got != 1 {
		t.Fatalf("rewritten: started = %d after %s, want 1", got, startExport)
	}

	for _, c := range []struct {
		fn        string
		arg, want uint64
	}{
		{"sum", 5000, 5000 * 4999 / 2},
		{"nested", 100, 100 * 100},
		{"calls", 5, 11 + 10 + 15 + 25 - 5 + 25 + 6 + 10},
		{"fan", 10, 1 << 10},
	} {
		ro, err := mo.ExportedFunction(c.fn).Call(ctx, c.arg)
		if err != nil {
			t.Fatalf("original %s: %v", c.fn, err)
		}
		rr, err := mr.ExportedFunction(c.fn).Call(ctx, c.arg)
		if err != nil {
			t.Fatalf("rewritten %s: %v", c.fn, err)
		}
		if int32(ro[0]) != int32(c.want) || rr[0] != ro[0] {
			t.Errorf("%s(%d): original %d, rewritten %d, want %d", c.fn, c.arg, int32(ro[0]), int32(rr[0]), int32(c.want))
		}
	}
	// sum: 5000 iterations; nested: 100 + 100×100; calls: one entry (its
	// callees are leaves, which have no check); fan(10): 2^11 - 1 entries.
	// One yield per yieldEvery loop iterations and entries together.
	if want := (5000 + 100 + 100*100 + 1 + 1<<11 - 1) / yieldEvery; yields != want {
		t.Errorf("%d yields, want %d", yields, want)
	}

	co, _ := rt.CompileModule(ctx, orig)
	cr, _ := rt.CompileModule(ctx, rewritten)
	checkSameNames(t, co, cr, false)
}

// checkSameNames checks that cr (rewritten) exports what co exports, under
// the same debug names, plus startExport when the original had a start
// section, and imports what co imports plus sluice.yield.
func checkSameNames(t *testing.T, co, cr wazero.CompiledModule, mayLackStart bool) {
	t.Helper()
	fo, fr := co.ExportedFunctions(), cr.ExportedFunctions()
	for name, def := range fo {
		got := fr[name]
		if got == nil {
			t.Errorf("export %q lost", name)
			continue
		}
		// Name is the name section's (empty without one); DebugName
		// falls back to the function index, which the rewrite shifts.
		if got.Name() != def.Name() {
			t.Errorf("export %q: name-section name %q, want %q", name, got.Name(), def.Name())
		}
	}
	extra := len(fr) - len(fo)
	if _, ok := fr[startExport]; ok {
		extra--
	} else if !mayLackStart {
		t.Errorf("no %s export", startExport)
	}
	if extra != 0 {
		t.Errorf("%d exports added besides %s", extra, startExport)
	}
	var want, got []string
	for _, d := range co.ImportedFunctions() {
		m, n, _ := d.Import()
		want = append(want, m+"."+n)
	}
	want = append(want, yieldModule+"."+yieldName)
	for _, d := range cr.ImportedFunctions() {
		m, n, _ := d.Import()
		got = append(got, m+"."+n)
	}
	if !slices.Equal(got, want) {
		t.Errorf("imports %v, want %v", got, want)
	}
}

// TestAddStopChecksFixtures rewrites every committed test module and the
// Go headers plugin: each compiles, keeps its exports and their names, and
// gains only the yield import.
func TestAddStopChecksFixtures(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*/*.wasm")
	more, _ := filepath.Glob("testdata/guests/*/*.wasm")
	paths = append(paths, more...)
	if !testing.Short() {
		paths = append(paths, plugintest.BuildGo(t, "plugins/headers"))
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	for _, path := range paths {
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		co, err := rt.CompileModule(ctx, orig)
		if err != nil {
			continue // not valid as written: nothing to keep
		}
		rewritten, err := addStopChecks(orig)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		cr, err := rt.CompileModule(ctx, rewritten)
		if err != nil {
			t.Errorf("%s: rewritten module does not compile: %v", path, err)
			continue
		}
		checkSameNames(t, co, cr, true)
		_ = co.Close(ctx)
		_ = cr.Close(ctx)
	}
}

// TestAddStopChecksRefuses: malformed or unsupported input gives an error
// naming the problem, never a panic.
func TestAddStopChecksRefuses(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	mod := func(sections ...[]byte) []byte {
		b := slices.Clone(header)
		for _, s := range sections {
			b = append(b, s...)
		}
		return b
	}
	// A code section with one body holding opcode op (no locals).
	code := func(op ...byte) []byte {
		body := append([]byte{0}, op...)
		body = append(body, 0x0b)
		sec := appendU32([]byte{1}, uint32(len(body)))
		return appendSection(nil, secCode, append(sec, body...))
	}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "not a WebAssembly binary"},
		{"text", []byte("(module)"), "not a WebAssembly binary"},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), "not a WebAssembly binary"},
		{"truncated section", mod([]byte{secType, 10, 1}), "unexpected end"},
		{"unknown section", mod([]byte{42, 0}), "unknown section id 42"},
		{"sections out of order", mod([]byte{secExport, 1, 0}, []byte{secType, 1, 0}), "out of order"},
		{"threads opcode", mod(code(0xfe, 0x00)), "unsupported opcode 0xfe"},
		{"relaxed SIMD opcode", mod(code(0xfd, 0x80, 0x02)), "unsupported opcode 0xfd 256"},
		{"truncated immediate", mod(code(0x41, 0x80)), "unexpected end"},
		{"over-long LEB", mod(code(0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)), "too long"},
		{"reserved export", mod(appendSection(nil, secExport, append(appendName([]byte{1}, startExport), 0x00, 0x00))), "reserves"},
		{"count beyond section", mod(appendSection(nil, secExport, []byte{0xf9, 0x8e, 0xec, 0x41, 0})), "entries in 1 bytes"},
		{"data beyond section", mod(appendSection(nil, 11, []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})), "unexpected end"},
		{"locals over limit", mod(appendSection(nil, secCode, []byte{1, 5, 1, 0xd1, 0x86, 0x03, 0x7f})), "declares 50001 locals"},
		{"type form", mod(appendSection(nil, secType, []byte{1, 0x5f, 0, 0})), "form 0x5f"},
	} {
		out, err := addStopChecks(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: addStopChecks = %d bytes, %v; want an error containing %q", c.name, len(out), err, c.want)
		}
	}
}

// TestLoadReportsModuleErrors: a module the rewrite refuses gets the
// rewrite's error; one it rewrites but the compiler refuses gets the
// compiler's error for the module as written.
func TestLoadReportsModuleErrors(t *testing.T) {
	h := newTestHost(t)
	dir := t.TempDir()
	// module is a module with one function of type () -> () and body.
	module := func(body ...byte) []byte {
		b := []byte("\x00asm\x01\x00\x00\x00")
		b = append(b, appendSection(nil, secType, []byte{1, 0x60, 0, 0})...)
		b = append(b, appendSection(nil, secFunc, []byte{1, 0})...)
		return append(b, appendSection(nil, secCode, append(appendU32([]byte{1}, uint32(len(body))), body...))...)
	}
	for _, c := range []struct {
		name string
		bin  []byte
		want string
	}{
		{"threads", module(0, 0xfe, 0x03, 0x00, 0x0b), "unsupported opcode 0xfe"},
		{"stack underflow", module(0, 0x6a, 0x0b), "i32.add"},
		{"locals", module(1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b), "declares 4294967295 locals"},
	} {
		path := filepath.Join(dir, c.name+".wasm")
		if err := os.WriteFile(path, c.bin, 0o644); err != nil {
			t.Fatal(err)
		}
		err := h.Check(context.Background(), proxy.PluginConfig{Name: "x", Path: path})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Check = %v, want an error naming the file and containing %q", c.name, err, c.want)
		}
	}
}

// TestStartSectionRuns: the start function a module declares runs once per
// instance, before the root context is created.
func TestStartSectionRuns(t *testing.T) {
	h := newTestHost(t)
	p := h.mustLoad(t, proxy.PluginConfig{Name: "start", Path: "testdata/stopcheck/start.wasm", Instances: 1})
	defer p.Close()
	if got := guestStatus(t, p); got != 42 {
		t.Fatalf("status = %d, want 42 (set by the start function)", got)
	}
}

// TestStartSectionLoopStopped: a start function that never returns fails
// the load with a timeout instead of hanging in instantiation.
func TestStartSectionLoopStopped(t *testing.T) {
	h := newTestHostWith(t, func(c *HostConfig) { c.StartTimeout = 50 * time.Millisecond })
	start := time.Now()
	_, err := h.Load(context.Background(), proxy.PluginConfig{Name: "start-loop", Path: "testdata/stopcheck/start_loop.wasm", Instances: 1})
	if err == nil || !strings.Contains(err.Error(), "start function") || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Load = %v, want a deadline error in the start function", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Load took %v", d)
	}
}

// TestLoopingGuestIsPreemptible: while a guest spins in a loop, other
// goroutines still run (with GOMAXPROCS=1 the sleeping test goroutine
// wakes up) and a stop-the-world (runtime.ReadMemStats) completes: the
// guest leaves native code at its yields, where the scheduler preempts it.
// Native code cannot be preempted, so without yields both would wait for
// the call to end, and with GOMAXPROCS=1 the deadline's timer would never
// run.
func TestLoopingGuestIsPreemptible(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			h := newTestHost(t)
			pc := fixtureConfig(t, "loop")
			pc.CallTimeout = proxy.Duration(2 * time.Second) // stopped after ~4 s
			p := h.mustLoad(t, pc)
			defer p.Close()
			done := make(chan error, 1)
			go func() { done <- runRequest(p, newExchange("/x")) }()
			start := time.Now()
			time.Sleep(50 * time.Millisecond) // the guest starts spinning
			if d := time.Since(start); d > time.Second {
				t.Errorf("a 50ms sleep took %v while the guest looped", d)
			}
			start = time.Now()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms) // stops the world
			if d := time.Since(start); d > time.Second {
				t.Errorf("stopping the world took %v while the guest looped", d)
			}
			select {
			case err := <-done:
				var ce *CallError
				if !errors.As(err, &ce) || ce.Kind != KindTimeout {
					t.Errorf("request error = %v, want a timeout", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the looping guest was not stopped")
			}
		})
	}
}

// FuzzAddStopChecks: no input panics addStopChecks; a module the rewrite
// refuses as unsupported (it parses, but uses more than WebAssembly 2.0)
// is one wazero refuses too, unless it exports the reserved name; the
// rewritten module is one wazero accepts whenever it accepts the original.
// Malformed input is not compiled (see scanModule). Seeded with every
// committed test module.
func FuzzAddStopChecks(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*/*.wasm")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	// Functions whose entry gets a check: one calling itself after a local
	// declaration, one that is only a call, and a leaf that gets none.
	module := func(bodies ...[]byte) []byte {
		b := []byte("\x00asm\x01\x00\x00\x00")
		b = append(b, appendSection(nil, secType, []byte{1, 0x60, 0, 0})...)
		fns := appendU32(nil, uint32(len(bodies)))
		code := appendU32(nil, uint32(len(bodies)))
		for _, body := range bodies {
			fns = append(fns, 0)
			code = append(appendU32(code, uint32(len(body))), body...)
		}
		b = append(b, appendSection(nil, secFunc, fns)...)
		return append(b, appendSection(nil, secCode, code)...)
	}
	f.Add(module([]byte{1, 1, 0x7f, 0x10, 0x00, 0x0b}))
	f.Add(module([]byte{0, 0x10, 0x01, 0x0b}, []byte{0, 0x10, 0x00, 0x0b}, []byte{0, 0x01, 0x0b}))
	ctx := context.Background()
	// The interpreter validates modules exactly as the compiler does,
	// faster.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { _ = rt.Close(ctx) })
	valid := func(b []byte) bool {
		c, err := rt.CompileModule(ctx, b)
		if err != nil {
			return false
		}
		_ = c.Close(ctx)
		return true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := addStopChecks(data)
		if err != nil && !errors.Is(err, errUnsupported) {
			// Not compiled: wazero trusts vector counts and can allocate
			// gigabytes for a malformed one (the rewrite checked them all
			// only when it got past the scan).
			return
		}
		if !valid(data) {
			return
		}
		if err != nil {
			if !strings.Contains(err.Error(), "reserves") {
				t.Fatalf("a module wazero accepts was refused: %v", err)
			}
			return
		}
		if c, err := rt.CompileModule(ctx, out); err != nil {
			t.Fatalf("rewritten module does not compile: %v", err)
		} else {
			_ = c.Close(ctx)
		}
	})
}
