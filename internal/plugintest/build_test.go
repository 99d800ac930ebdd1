package plugintest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-proxy/sluice/internal/plugintest"
)

// guest is one third-party-toolchain plugin under test.
type guest struct {
	lang  string // the value of x-sluice-guest and the 403 body suffix
	build func(tb testing.TB) string
	abi   string // the ABI marker it exports
	alloc string // its allocator export
}

func thirdPartyGuests() []guest {
	return []guest{
		{"c", func(tb testing.TB) string { return plugintest.BuildC(tb, pluginDir(tb, "c")) },
			"proxy_abi_version_0_2_1", "proxy_on_memory_allocate"},
		{"assemblyscript", func(tb testing.TB) string { return plugintest.BuildAS(tb, pluginDir(tb, "assemblyscript")) },
			"proxy_abi_version_0_2_0", "malloc"},
	}
}

// pluginDir returns plugins/<name> in this module.
func pluginDir(tb testing.TB, name string) string {
	tb.Helper()
	// FixtureDir is <root>/wasm/testdata/hostile.
	root := filepath.Dir(filepath.Dir(filepath.Dir(plugintest.FixtureDir(tb))))
	return filepath.Join(root, "plugins", name)
}

func TestBuildExports(t *testing.T) {
	for _, g := range thirdPartyGuests() {
		t.Run(g.lang, func(t *testing.T) {
			path := g.build(t)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("\x00asm\x01\x00\x00\x00")) {
				t.Fatalf("%s does not start with the wasm magic and version 1: % x", path, data[:min(8, len(data))])
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			compiled, err := rt.CompileModule(ctx, data)
			if err != nil {
				t.Fatalf("wazero cannot compile %s: %v", path, err)
			}
			exports := compiled.ExportedFunctions()
			want := []string{g.abi, g.alloc, "proxy_on_context_create", "proxy_on_vm_start",
				"proxy_on_configure", "proxy_on_request_headers", "proxy_on_response_headers",
				"proxy_on_done", "proxy_on_delete"}
			for _, name := range want {
				def, ok := exports[name]
				if !ok {
					t.Errorf("missing export %s", name)
					continue
				}
				sig := callbacks[name]
				if len(def.ParamTypes()) != sig.params || len(def.ResultTypes()) != sig.results {
					t.Errorf("export %s has %d params, %d results; want %d, %d",
						name, len(def.ParamTypes()), len(def.ResultTypes()), sig.params, sig.results)
				}
			}
			if _, ok := compiled.ExportedMemories()["memory"]; !ok {
				t.Error("missing memory export")
			}
			for _, imp := range compiled.ImportedFunctions() {
				module, name, _ := imp.Import()
				switch {
				case module == "env":
					hf, ok := hostFuncs[name]
					if !ok {
						t.Errorf("imports env.%s, which the tests do not know", name)
					} else if len(imp.ParamTypes()) != hf.params || len(imp.ResultTypes()) != 1 {
						t.Errorf("env.%s imported with %d params; the spec has %d", name, len(imp.ParamTypes()), hf.params)
					}
				case module == "wasi_unstable" && name == "proc_exit":
				default:
					t.Errorf("unexpected import %s.%s", module, name)
				}
			}
		})
	}
}

// TestGuestBehaviour runs both guests through the same scenarios and expects
// the same results, differing only in the language name.
func TestGuestBehaviour(t *testing.T) {
	for _, g := range thirdPartyGuests() {
		t.Run(g.lang, func(t *testing.T) {
			path := g.build(t)
			// start runs the guest's start-up with config; want is what
			// proxy_on_configure must return (1 accepted, 0 refused).
			start := func(t *testing.T, config string, want uint32) *miniHost {
				t.Helper()
				h := newMiniHost(t, path, hostOptions{})
				h.config = config
				if r := h.start(); r != want {
					t.Fatalf("configure(%q) returned %d, want %d; logs %q", config, r, want, h.logs)
				}
				return h
			}

			t.Run("policy", func(t *testing.T) {
				for _, config := range []string{"", "policy", " policy\n"} {
					h := start(t, config, 1)
					if a := h.exchange("/forbidden/secret"); a != 1 {
						t.Errorf("/forbidden/secret: action %d, want 1 (PAUSE)", a)
					}
					want := localReply{status: 403, details: "sluice_guest_forbidden", body: "forbidden by " + g.lang}
					if h.local == nil || *h.local != want {
						t.Errorf("/forbidden/secret: local reply %+v, want %+v", h.local, want)
					}
					if a := h.exchange("/v1/chat/completions?x=/forbidden"); a != 0 {
						t.Errorf("allowed path: action %d, want 0", a)
					}
					if h.local != nil {
						t.Errorf("allowed path: unexpected local reply %+v", h.local)
					}
					if v, _ := header(h.respHeaders, "x-sluice-guest"); v != g.lang {
						t.Errorf("response x-sluice-guest = %q, want %q (headers %q)", v, g.lang, h.respHeaders)
					}
					if _, ok := header(h.reqHeaders, "x-bench"); ok {
						t.Error("policy mode added x-bench")
					}
				}
			})

			t.Run("headers-only", func(t *testing.T) {
				h := start(t, "headers-only", 1)
				for i := 0; i < 3; i++ {
					if a := h.exchange("/forbidden"); a != 0 {
						t.Fatalf("action %d, want 0", a)
					}
					if v, ok := header(h.reqHeaders, "x-bench"); !ok || v != "1" {
						t.Fatalf("request x-bench = %q, %v; want \"1\" (headers %q)", v, ok, h.reqHeaders)
					}
					if h.local != nil {
						t.Fatalf("unexpected local reply %+v", h.local)
					}
					if _, ok := header(h.respHeaders, "x-sluice-guest"); ok {
						t.Fatal("headers-only mode tagged the response")
					}
				}
			})

			t.Run("bad config", func(t *testing.T) {
				h := start(t, "shared-data-please", 0)
				if !strings.Contains(strings.Join(h.logs, "\n"), "unknown configuration") {
					t.Errorf("no log naming the bad configuration; logs %q", h.logs)
				}
			})
		})
	}
}

func TestBuildCCache(t *testing.T) {
	src := pluginDir(t, "c")
	first := plugintest.BuildC(t, src)
	if again := plugintest.BuildC(t, src); again != first {
		t.Fatalf("second build of unchanged sources: %s, want cached %s", again, first)
	}

	// A copy with one changed byte must produce a different artifact.
	dir := t.TempDir()
	code, err := os.ReadFile(filepath.Join(src, "plugin.c"))
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(code, []byte(`#define GUEST "c"`), []byte(`#define GUEST "d"`), 1)
	if bytes.Equal(changed, code) {
		t.Fatal("plugin.c no longer defines GUEST as \"c\"; update this test")
	}
	if err := os.WriteFile(filepath.Join(dir, "plugin.c"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	other := plugintest.BuildC(t, dir)
	if other == first {
		t.Fatalf("changed source reused the cached artifact %s", first)
	}
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(other)
	if bytes.Equal(a, b) {
		t.Fatal("changed source produced identical wasm")
	}
}

func TestBuildCErrors(t *testing.T) {
	plugintest.BuildC(t, pluginDir(t, "c")) // skips here when clang is missing

	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "plugin.c"), []byte("int f(void) { return }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ft := &fakeTB{TB: t}
	ft.run(func() { plugintest.BuildC(ft, broken) })
	if !ft.failed || !strings.Contains(ft.msg, "error") || !strings.Contains(ft.msg, "plugin.c") {
		t.Errorf("broken source: failed=%v msg=%q; want a failure quoting the compiler error", ft.failed, ft.msg)
	}

	ft = &fakeTB{TB: t}
	ft.run(func() { plugintest.BuildC(ft, t.TempDir()) })
	if !ft.failed || !strings.Contains(ft.msg, "no *.c files") {
		t.Errorf("empty dir: failed=%v msg=%q", ft.failed, ft.msg)
	}
}

func TestBuildASMissingDependencies(t *testing.T) {
	// A copy of the plugin without node_modules must skip (or fail in strict
	// mode) with a message telling how to install the compiler.
	src := pluginDir(t, "assemblyscript")
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, strict := range []string{"", "1"} {
		t.Setenv(plugintest.StrictEnv, strict)
		ft := &fakeTB{TB: t}
		ft.run(func() { plugintest.BuildAS(ft, dir) })
		if !strings.Contains(ft.msg, "npm ci") && !strings.Contains(ft.msg, "node is not on PATH") {
			t.Errorf("strict=%q: message %q does not say what to install", strict, ft.msg)
		}
		if strict == "1" && !ft.failed || strict == "" && !ft.skipped {
			t.Errorf("strict=%q: failed=%v skipped=%v", strict, ft.failed, ft.skipped)
		}
	}
}

func TestSkipOrFail(t *testing.T) {
	for _, strict := range []string{"", "0", "1"} {
		t.Setenv(plugintest.StrictEnv, strict)
		ft := &fakeTB{TB: t}
		ft.run(func() { plugintest.SkipOrFail(ft, "need %s", "wat2wasm") })
		wantFail := strict == "1"
		if ft.failed != wantFail || ft.skipped == wantFail || !strings.Contains(ft.msg, "need wat2wasm") {
			t.Errorf("strict=%q: failed=%v skipped=%v msg=%q", strict, ft.failed, ft.skipped, ft.msg)
		}
		if plugintest.Strict() != wantFail {
			t.Errorf("strict=%q: Strict() = %v", strict, plugintest.Strict())
		}
	}
}

// fakeTB records Fatal and Skip calls instead of stopping the real test.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

type stopped struct{}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = true
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// run calls fn, absorbing the panic that Fatalf and Skipf use to stop it.
func (f *fakeTB) run(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	fn()
}
