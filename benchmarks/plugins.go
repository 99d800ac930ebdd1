package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// guest is one build of the headers-only benchmark plugin.
type guest struct {
	Lang string // "go", "c" or "as"
	Path string // the .wasm file; empty when Skip is set
	// Config returns the plugin configuration for chain position i (0-based).
	// The Go plugin adds a header named by its config, so each copy in a
	// chain adds its own (x-bench, x-bench-2, …); the C and AssemblyScript
	// plugins have a fixed "headers-only" mode that adds x-bench: 1.
	Config func(i int) any
	Skip   string // why this guest is not available
	Build  string // the build command, for the report
}

// guestLabel names a guest language in tables.
var guestLabel = map[string]string{"go": "Go", "c": "C", "as": "AssemblyScript",
	"golist": "Go (header list)", "golist-log": "Go (header list, logs dropped)"}

// guestBuilders build the headers plugin per guest language.
var guestBuilders = map[string]func(context.Context, string, string) (*guest, error){
	"go": buildGoGuest, "c": buildCGuest, "as": buildASGuest,
	"golist": func(ctx context.Context, repo, dir string) (*guest, error) {
		return buildListGuest(ctx, repo, dir, "golist", "quiet")
	},
	"golist-log": func(ctx context.Context, repo, dir string) (*guest, error) {
		return buildListGuest(ctx, repo, dir, "golist-log", "")
	},
}

// buildListGuest builds wasm/testdata/guests/listheaders, the guest
// written the way third-party-SDK plugins are; config "quiet" makes it
// skip its per-header log lines.
func buildListGuest(ctx context.Context, repo, dir, lang, config string) (*guest, error) {
	g := &guest{Lang: lang, Config: func(int) any { return config }}
	pkg := "./wasm/testdata/guests/listheaders"
	if !hasGoFiles(filepath.Join(repo, pkg)) {
		g.Skip = pkg + " has no Go sources"
		return g, nil
	}
	g.Path = filepath.Join(dir, lang+".wasm")
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", g.Path, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	g.Build = "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o " + lang + ".wasm " + pkg
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("benchmarks: build the list-headers guest (%s): %w\n%s", g.Build, err, tail(string(out), 2000))
	}
	return g, nil
}

// buildGuests builds the headers plugin for each of langs ("go", "c",
// "as") it can, into dir. A guest whose sources or toolchain are absent is
// returned with Skip set; a build that fails with sources present is an
// error, since that is a broken tree rather than an optional contender.
func buildGuests(ctx context.Context, repo, dir string, langs []string) (map[string]*guest, error) {
	out := map[string]*guest{}
	for _, lang := range langs {
		b, ok := guestBuilders[lang]
		if !ok {
			return nil, fmt.Errorf("benchmarks: no plugin build for guest language %q", lang)
		}
		g, err := b(ctx, repo, dir)
		if err != nil {
			return nil, err
		}
		out[g.Lang] = g
	}
	return out, nil
}

// goHeadersConfig is the Go headers plugin's configuration for chain
// position i: {"request":{"add":{"x-bench":"1"}}}, with x-bench-2,
// x-bench-3, … for the later copies.
func goHeadersConfig(i int) any {
	name := benchHeader
	if i > 0 {
		name = fmt.Sprintf("%s-%d", benchHeader, i+1)
	}
	return map[string]any{"request": map[string]any{"add": map[string]any{name: "1"}}}
}

func buildGoGuest(ctx context.Context, repo, dir string) (*guest, error) {
	g := &guest{Lang: "go", Config: goHeadersConfig}
	src := filepath.Join(repo, "plugins", "headers")
	if !hasGoFiles(src) {
		g.Skip = "plugins/headers has no Go sources yet"
		return g, nil
	}
	g.Path = filepath.Join(dir, "headers-go.wasm")
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", g.Path, "./plugins/headers")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	g.Build = "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o headers-go.wasm ./plugins/headers"
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("benchmarks: build Go headers plugin (%s): %w\n%s", g.Build, err, tail(string(out), 2000))
	}
	return g, nil
}

func buildCGuest(ctx context.Context, repo, dir string) (*guest, error) {
	g := &guest{Lang: "c", Config: func(int) any { return "headers-only" }}
	src := filepath.Join(repo, "plugins", "c", "plugin.c")
	if _, err := os.Stat(src); err != nil {
		g.Skip = "plugins/c/plugin.c is absent"
		return g, nil
	}
	if _, err := exec.LookPath("clang"); err != nil {
		g.Skip = "clang is not installed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)"
		return g, nil
	}
	g.Path = filepath.Join(dir, "headers-c.wasm")
	args := []string{"--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wl,--strip-debug", "-o", g.Path, "plugin.c"}
	g.Build = "clang " + strings.Join(args[:len(args)-3], " ") + " -o headers-c.wasm plugin.c   (in plugins/c)"
	cmd := exec.CommandContext(ctx, "clang", args...)
	cmd.Dir = filepath.Dir(src)
	if out, err := cmd.CombinedOutput(); err != nil {
		// A missing wasm sysroot or linker is a toolchain gap, not a broken
		// plugin: skip with the packages to install.
		g.Skip = fmt.Sprintf("clang could not build plugins/c (need apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32): %v: %s",
			err, strings.TrimSpace(tail(string(out), 300)))
		g.Path = ""
	}
	return g, nil
}

// buildASGuest runs the asc command of plugins/assemblyscript's "asbuild"
// npm script with the output redirected into dir.
func buildASGuest(ctx context.Context, repo, dir string) (*guest, error) {
	g := &guest{Lang: "as", Config: func(int) any { return "headers-only" }}
	pkgDir := filepath.Join(repo, "plugins", "assemblyscript")
	raw, err := os.ReadFile(filepath.Join(pkgDir, "package.json"))
	if err != nil {
		g.Skip = "plugins/assemblyscript/package.json is absent"
		return g, nil
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		return nil, fmt.Errorf("benchmarks: plugins/assemblyscript/package.json: %w", err)
	}
	script, ok := pkg.Scripts["asbuild"]
	if !ok {
		g.Skip = `plugins/assemblyscript/package.json has no "asbuild" script`
		return g, nil
	}
	g.Path = filepath.Join(dir, "headers-as.wasm")
	args, err := ascArgs(script, g.Path)
	if err != nil {
		return nil, err
	}
	asc := filepath.Join(pkgDir, "node_modules", ".bin", "asc")
	if _, err := os.Stat(asc); err != nil {
		g.Skip, g.Path = "plugins/assemblyscript/node_modules is not installed (run npm ci there)", ""
		return g, nil
	}
	if _, err := exec.LookPath("node"); err != nil {
		g.Skip, g.Path = "node is not installed (apt-get install nodejs)", ""
		return g, nil
	}
	g.Build = "npm run asbuild (plugins/assemblyscript), output redirected: " + script
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, asc, args...)
	cmd.Dir = pkgDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("benchmarks: build AssemblyScript plugin (%s): %w\n%s", script, err, tail(string(out), 2000))
	}
	return g, nil
}

// ascArgs turns an npm script "asc <args>" into asc's arguments with the
// binary output (-b, --binaryFile, -o, --outFile) replaced by out.
func ascArgs(script, out string) ([]string, error) {
	f := strings.Fields(script)
	if len(f) == 0 || f[0] != "asc" {
		return nil, fmt.Errorf("benchmarks: plugins/assemblyscript asbuild script %q does not start with asc", script)
	}
	args := f[1:]
	replaced := false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-b", "--binaryFile", "-o", "--outFile":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("benchmarks: asbuild script %q: %s has no value", script, args[i])
			}
			args[i+1] = out
			replaced = true
			i++
		}
	}
	if !replaced {
		return nil, fmt.Errorf("benchmarks: asbuild script %q names no output file (-b)", script)
	}
	return args, nil
}

func hasGoFiles(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			return true
		}
	}
	return false
}

// pluginChain returns n copies of g as Sluice plugin entries.
func pluginChain(g *guest, n int) ([]sluicePlugin, error) {
	if g == nil || g.Path == "" {
		return nil, errors.New("benchmarks: plugin not built")
	}
	var ps []sluicePlugin
	for i := 0; i < n; i++ {
		ps = append(ps, sluicePlugin{
			Name:   fmt.Sprintf("bench-%s-%d", g.Lang, i+1),
			Path:   g.Path,
			Config: g.Config(i),
		})
	}
	return ps, nil
}
