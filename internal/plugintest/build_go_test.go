package plugintest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// sig is a function signature.
type sig struct{ params, results []api.ValueType }

func (s sig) String() string {
	return fmt.Sprintf("%v -> %v", valueTypeNames(s.params), valueTypeNames(s.results))
}

func valueTypeNames(ts []api.ValueType) []string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return names
}

func i32s(n int) []api.ValueType { return slices.Repeat([]api.ValueType{i32}, n) }

// abiHostFuncs are the Proxy-Wasm ABI v0.2.1 host functions (module "env")
// with their parameter types, from the spec; every one returns an i32
// status.
var abiHostFuncs = map[string][]api.ValueType{
	"proxy_log":                          i32s(3),
	"proxy_get_log_level":                i32s(1),
	"proxy_get_current_time_nanoseconds": i32s(1),
	"proxy_set_tick_period_milliseconds": i32s(1),
	"proxy_get_buffer_bytes":             i32s(5),
	"proxy_set_buffer_bytes":             i32s(5),
	"proxy_get_buffer_status":            i32s(3),
	"proxy_get_header_map_size":          i32s(2),
	"proxy_get_header_map_pairs":         i32s(3),
	"proxy_set_header_map_pairs":         i32s(3),
	"proxy_get_header_map_value":         i32s(5),
	"proxy_add_header_map_value":         i32s(5),
	"proxy_replace_header_map_value":     i32s(5),
	"proxy_remove_header_map_value":      i32s(3),
	"proxy_continue_stream":              i32s(1),
	"proxy_close_stream":                 i32s(1),
	"proxy_get_status":                   i32s(3),
	"proxy_send_local_response":          i32s(8),
	"proxy_http_call":                    i32s(10),
	"proxy_get_property":                 i32s(4),
	"proxy_set_property":                 i32s(4),
	"proxy_set_effective_context":        i32s(1),
	"proxy_done":                         nil,
	"proxy_set_shared_data":              i32s(5),
	"proxy_get_shared_data":              i32s(5),
	"proxy_register_shared_queue":        i32s(3),
	"proxy_resolve_shared_queue":         i32s(5),
	"proxy_enqueue_shared_queue":         i32s(3),
	"proxy_dequeue_shared_queue":         i32s(3),
	"proxy_define_metric":                i32s(4),
	"proxy_record_metric":                {i32, i64},
	"proxy_increment_metric":             {i32, i64},
	"proxy_get_metric":                   i32s(2),
	"proxy_call_foreign_function":        i32s(6),
}

// sdkHostFuncs are the host functions the Go SDK wraps: the abicheck guest
// must import exactly these.
var sdkHostFuncs = []string{
	"proxy_add_header_map_value", "proxy_call_foreign_function", "proxy_close_stream",
	"proxy_continue_stream", "proxy_define_metric", "proxy_dequeue_shared_queue", "proxy_done",
	"proxy_enqueue_shared_queue", "proxy_get_buffer_bytes", "proxy_get_current_time_nanoseconds",
	"proxy_get_header_map_pairs", "proxy_get_header_map_value", "proxy_get_log_level",
	"proxy_get_metric", "proxy_get_property", "proxy_get_shared_data", "proxy_http_call",
	"proxy_increment_metric", "proxy_log", "proxy_record_metric", "proxy_register_shared_queue",
	"proxy_remove_header_map_value", "proxy_replace_header_map_value", "proxy_resolve_shared_queue",
	"proxy_send_local_response", "proxy_set_buffer_bytes", "proxy_set_effective_context",
	"proxy_set_header_map_pairs", "proxy_set_property", "proxy_set_shared_data",
	"proxy_set_tick_period_milliseconds",
}

// sdkExports are the callbacks every Go SDK guest exports, with their
// ABI v0.2.1 signatures (plus the reactor's _initialize).
var sdkExports = map[string]sig{
	"_initialize":                 {},
	"proxy_abi_version_0_2_1":     {},
	"proxy_on_memory_allocate":    {i32s(1), i32s(1)},
	"proxy_on_context_create":     {i32s(2), nil},
	"proxy_on_vm_start":           {i32s(2), i32s(1)},
	"proxy_on_configure":          {i32s(2), i32s(1)},
	"proxy_on_request_headers":    {i32s(3), i32s(1)},
	"proxy_on_request_body":       {i32s(3), i32s(1)},
	"proxy_on_request_trailers":   {i32s(2), i32s(1)},
	"proxy_on_response_headers":   {i32s(3), i32s(1)},
	"proxy_on_response_body":      {i32s(3), i32s(1)},
	"proxy_on_response_trailers":  {i32s(2), i32s(1)},
	"proxy_on_log":                {i32s(1), nil},
	"proxy_on_done":               {i32s(1), i32s(1)},
	"proxy_on_delete":             {i32s(1), nil},
	"proxy_on_tick":               {i32s(1), nil},
	"proxy_on_http_call_response": {i32s(5), nil},
	"proxy_on_queue_ready":        {i32s(2), nil},
	"proxy_on_foreign_function":   {i32s(3), nil},
}

// goGuests are the Go guest packages whose ABI surface is checked.
var goGuests = []string{"plugins/headers", "plugins/deny", "plugins/sdk/internal/abicheck"}

func TestBuildGoABI(t *testing.T) {
	for _, pkg := range goGuests {
		t.Run(strings.ReplaceAll(pkg, "/", "_"), func(t *testing.T) {
			path := BuildGo(t, pkg)
			if !filepath.IsAbs(path) || filepath.Dir(path) != filepath.Join(os.TempDir(), "sluice-plugintest") {
				t.Errorf("BuildGo returned %q, want an absolute path in the shared cache", path)
			}
			bin, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(bin, wasmMagic) {
				t.Fatalf("%s does not start with the wasm magic and version: % x", path, bin[:min(8, len(bin))])
			}
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
			defer r.Close(ctx)
			cm, err := r.CompileModule(ctx, bin)
			if err != nil {
				t.Fatalf("compiling %s: %v", pkg, err)
			}
			exports := cm.ExportedFunctions()
			for name, want := range sdkExports {
				def, ok := exports[name]
				if !ok {
					t.Errorf("export %s is missing", name)
					continue
				}
				if got := (sig{def.ParamTypes(), def.ResultTypes()}); got.String() != want.String() {
					t.Errorf("export %s has signature %v, want %v", name, got, want)
				}
			}
			var envImports []string
			for _, def := range cm.ImportedFunctions() {
				module, name, _ := def.Import()
				switch module {
				case "wasi_snapshot_preview1":
					continue
				case "env":
				default:
					t.Errorf("import %s.%s is from an unexpected module", module, name)
					continue
				}
				envImports = append(envImports, name)
				params, ok := abiHostFuncs[name]
				if !ok {
					t.Errorf("import env.%s is not a Proxy-Wasm v0.2.1 host function", name)
					continue
				}
				want := sig{params, i32s(1)}
				if got := (sig{def.ParamTypes(), def.ResultTypes()}); got.String() != want.String() {
					t.Errorf("import env.%s has signature %v, want %v", name, got, want)
				}
			}
			if pkg == "plugins/sdk/internal/abicheck" {
				slices.Sort(envImports)
				if !slices.Equal(envImports, sdkHostFuncs) {
					t.Errorf("abicheck imports %v\nwant every SDK-wrapped host function %v", envImports, sdkHostFuncs)
				}
			}
		})
	}
}

func TestBuildGoCached(t *testing.T) {
	first := BuildGo(t, "plugins/headers")
	st1, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	second := BuildGo(t, "plugins/headers")
	if second != first {
		t.Fatalf("second BuildGo returned %s, want the cached %s", second, first)
	}
	st2, err := os.Stat(second)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("cached module was rebuilt: mtime %v then %v", st1.ModTime(), st2.ModTime())
	}
	if other := BuildGo(t, "plugins/deny"); other == first {
		t.Errorf("plugins/deny and plugins/headers share the cache entry %s", other)
	}
}

func TestGoBuildKey(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n")
	write("plugins/sdk/sdk.go", "package sdk\n")
	write("plugins/sdk/inner/x.go", "package inner\n")
	write("plugins/internal/shared/s.go", "package shared\n")
	write("plugins/p/main.go", "package main\n")
	write("plugins/p/README.md", "docs")
	write("plugins/p/sub/ignored.go", "package sub\n")
	key := func() string {
		t.Helper()
		k, err := goBuildKey(root, "plugins/p", "go version go1.26 linux/amd64")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key()
	if again := key(); again != base {
		t.Fatalf("key is not stable: %s then %s", base, again)
	}
	changes := []struct {
		what     string
		rel, txt string
		changes  bool
	}{
		{"README (not a .go file)", "plugins/p/README.md", "new docs", false},
		{"nested package of the plugin", "plugins/p/sub/ignored.go", "package sub // changed\n", false},
		{"plugin source", "plugins/p/main.go", "package main // changed\n", true},
		{"SDK source", "plugins/sdk/sdk.go", "package sdk // changed\n", true},
		{"nested SDK source", "plugins/sdk/inner/x.go", "package inner // changed\n", true},
		{"shared guest package", "plugins/internal/shared/s.go", "package shared // changed\n", true},
		{"go.mod", "go.mod", "module example.com/m\n\ngo 1.26\n", true},
		{"go.sum appearing", "go.sum", "x v1 h1:y\n", true},
	}
	prev := base
	for _, c := range changes {
		write(c.rel, c.txt)
		got := key()
		if (got != prev) != c.changes {
			t.Errorf("changing the %s: key changed = %v, want %v", c.what, got != prev, c.changes)
		}
		prev = got
	}
	k2, err := goBuildKey(root, "plugins/p", "go version go1.27 linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	if k2 == prev {
		t.Error("a different go version gives the same key")
	}
	if _, err := goBuildKey(root, "plugins/sdk/inner/none", "v"); err == nil {
		t.Error("goBuildKey for a missing package directory succeeded")
	}
}

// stopTB records a Fatalf or Skipf and stops the calling function the way
// testing does (the panic stands in for runtime.Goexit).
type stopTB struct {
	testing.TB
	fatal, skip string
}

type tbStopped struct{}

func (s *stopTB) Helper() {}
func (s *stopTB) Fatalf(format string, args ...any) {
	s.fatal = fmt.Sprintf(format, args...)
	panic(tbStopped{})
}
func (s *stopTB) Skipf(format string, args ...any) {
	s.skip = fmt.Sprintf(format, args...)
	panic(tbStopped{})
}

func runStopped(t *testing.T, f func(tb testing.TB)) *stopTB {
	t.Helper()
	s := &stopTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(tbStopped); !ok {
					panic(r)
				}
			}
		}()
		f(s)
	}()
	return s
}

func TestBuildGoErrors(t *testing.T) {
	for _, c := range []struct{ pkg, want string }{
		{"", "clean slash-separated"},
		{"../plugins/headers", "clean slash-separated"},
		{"/plugins/headers", "clean slash-separated"},
		{"plugins//headers", "clean slash-separated"},
		{"plugins/no-such-plugin", "no package directory"},
	} {
		s := runStopped(t, func(tb testing.TB) { BuildGo(tb, c.pkg) })
		if !strings.Contains(s.fatal, c.want) {
			t.Errorf("BuildGo(%q): fatal %q, want it to mention %q", c.pkg, s.fatal, c.want)
		}
	}
}

func TestBuildGoOtherModule(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	s := runStopped(t, func(tb testing.TB) { BuildGo(tb, "plugins/headers") })
	if !strings.Contains(s.fatal, `is module "example.com/other"`) {
		t.Errorf("fatal %q, want it to name the foreign module", s.fatal)
	}
}

func TestBuildGoCompileError(t *testing.T) {
	root := t.TempDir()
	for rel, content := range map[string]string{
		"go.mod":              "module github.com/sluice-proxy/sluice\n\ngo 1.24\n",
		"plugins/sdk/sdk.go":  "package sdk\n",
		"plugins/bad/main.go": "//go:build wasip1\n\npackage main\n\nfunc main() { undefinedThing() }\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(filepath.Join(root, "plugins", "bad"))
	s := runStopped(t, func(tb testing.TB) { BuildGo(tb, "plugins/bad") })
	if !strings.Contains(s.fatal, "undefinedThing") {
		t.Errorf("compile error: fatal %q, want the compiler's output naming undefinedThing", s.fatal)
	}
}

func TestBuildGoMissingTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(StrictEnv, "")
	s := runStopped(t, func(tb testing.TB) { BuildGo(tb, "plugins/headers") })
	if s.fatal != "" || !strings.Contains(s.skip, "go tool is not on PATH") {
		t.Errorf("lenient: skip %q fatal %q, want a skip naming the missing go tool", s.skip, s.fatal)
	}
	t.Setenv(StrictEnv, "1")
	s = runStopped(t, func(tb testing.TB) { BuildGo(tb, "plugins/headers") })
	if s.skip != "" || !strings.Contains(s.fatal, "go tool is not on PATH") {
		t.Errorf("strict: skip %q fatal %q, want a failure naming the missing go tool", s.skip, s.fatal)
	}
}
