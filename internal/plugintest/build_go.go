package plugintest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ModulePath is the import path of the Sluice module; BuildGo builds
// packages below it and refuses to run in any other module.
const ModulePath = "github.com/sluice-proxy/sluice"

// goBuildTimeout bounds one `go build`. A cold build compiles the standard
// library for wasip1, which takes a minute or more on a busy 2-core machine.
const goBuildTimeout = 10 * time.Minute

// goSharedDirs hold the packages guest plugins share (the SDK and the
// helpers under plugins/internal); every .go file in them is part of each
// plugin's cache key.
var goSharedDirs = []string{"plugins/sdk", "plugins/internal"}

var (
	// goBuildMu serialises BuildGo within a process: concurrent tests asking
	// for the same plugin wait for one build instead of racing several.
	goBuildMu sync.Mutex
	// goVersions caches `go version` per go binary path (guarded by goBuildMu).
	goVersions = map[string]string{}
)

// BuildGo builds the Go guest package ModulePath/pkg (for example
// "plugins/headers") with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
//
// and returns the absolute path of the .wasm file. The module root is found
// by walking up from the working directory to go.mod.
//
// Results are cached across tests and across test binaries under
// os.TempDir()/sluice-plugintest/<hash>.wasm, where the hash covers
// `go version`, GOFLAGS, go.mod, go.sum, the package's .go files and every
// .go file under plugins/sdk and plugins/internal. The file is written to a temporary name and
// renamed into place, so concurrent `go test` processes never see a partial
// module; within a process builds are serialised. The returned file is
// shared: callers must not modify it.
//
// When the go tool is not on PATH, BuildGo skips tb (or fails it when
// SLUICE_TEST_STRICT=1). A malformed pkg, a missing package directory or a
// compile error always fails tb, with the compiler's output.
func BuildGo(tb testing.TB, pkg string) string {
	tb.Helper()
	if pkg == "" || path.IsAbs(pkg) || path.Clean(pkg) != pkg || strings.HasPrefix(pkg, "..") || strings.Contains(pkg, `\`) {
		tb.Fatalf("plugintest: BuildGo(%q): want a clean slash-separated package path relative to the module root, such as \"plugins/headers\"", pkg)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		SkipOrFail(tb, "BuildGo %s: the go tool is not on PATH (%v); install Go >= 1.26.8 (go.mod)", pkg, err)
		return ""
	}
	root, err := moduleRootFrom(".")
	if err != nil {
		tb.Fatalf("plugintest: BuildGo %s: %v", pkg, err)
	}
	if mod, err := goModulePath(root); err != nil || mod != ModulePath {
		tb.Fatalf("plugintest: BuildGo %s: %s/go.mod is module %q (%v), want %s", pkg, root, mod, err, ModulePath)
	}
	pkgDir := filepath.Join(root, filepath.FromSlash(pkg))
	if st, err := os.Stat(pkgDir); err != nil || !st.IsDir() {
		tb.Fatalf("plugintest: BuildGo %s: no package directory %s", pkg, pkgDir)
	}

	goBuildMu.Lock()
	defer goBuildMu.Unlock()
	version, ok := goVersions[goBin]
	if !ok {
		version, err = output("", goBin, "version")
		if err != nil {
			tb.Fatalf("plugintest: BuildGo %s: %v", pkg, err)
		}
		goVersions[goBin] = version
	}
	key, err := goBuildKey(root, pkg, version)
	if err != nil {
		tb.Fatalf("plugintest: BuildGo %s: %v", pkg, err)
	}
	out, err := buildCached(key, func(tmp string) error {
		return goBuild(root, goBin, tmp, "./"+pkg)
	})
	if err != nil {
		tb.Fatalf("plugintest: BuildGo %s: %v", pkg, err)
	}
	return out
}

// goBuildKey hashes everything that determines the module BuildGo produces.
func goBuildKey(root, pkg, goVersion string) (string, error) {
	pkgFiles, err := collectSources(filepath.Join(root, filepath.FromSlash(pkg)), func(rel string) bool {
		return path.Dir(rel) == "." && strings.HasSuffix(rel, ".go")
	})
	if err != nil {
		return "", err
	}
	if len(pkgFiles) == 0 {
		return "", fmt.Errorf("no .go files in %s", pkg)
	}
	files := []string{"go.mod"}
	if fileExists(filepath.Join(root, "go.sum")) {
		files = append(files, "go.sum")
	}
	for _, f := range pkgFiles {
		files = append(files, pkg+"/"+f)
	}
	for _, dir := range goSharedDirs {
		if st, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir))); err != nil || !st.IsDir() {
			continue
		}
		shared, err := collectSources(filepath.Join(root, filepath.FromSlash(dir)), func(rel string) bool {
			return strings.HasSuffix(rel, ".go")
		})
		if err != nil {
			return "", err
		}
		for _, f := range shared { // may repeat pkg's files when pkg is shared: harmless
			files = append(files, dir+"/"+f)
		}
	}
	return hashInputs(root, files, "go", "wasip1/wasm c-shared", goVersion, "GOFLAGS="+os.Getenv("GOFLAGS"))
}

// goBuild runs the wasip1 build of target into out, from the module root.
func goBuild(root, goBin, out, target string) error {
	ctx, cancel := context.WithTimeout(context.Background(), goBuildTimeout)
	defer cancel()
	args := []string{"build", "-buildmode=c-shared", "-o", out, target}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("GOOS=wasip1 GOARCH=wasm go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// goModulePath returns the module path declared in root/go.mod.
func goModulePath(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("no module line")
}
