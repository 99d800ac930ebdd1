package plugintest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// cCompileFlags are the clang flags BuildC uses; plugins/c/README.md shows the
// same command.
var cCompileFlags = []string{
	"--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wl,--strip-debug",
}

// cPackages names the Debian packages that provide the C guest toolchain.
const cPackages = "clang lld wasi-libc libclang-rt-14-dev-wasm32"

// toolTimeout bounds one compiler run.
const toolTimeout = 3 * time.Minute

// BuildC compiles every *.c file in srcDir into one reactor-style wasm32-wasi
// module and returns the absolute path of the .wasm file. The result is cached
// under os.TempDir()/sluice-plugintest/, keyed by a hash of the sources
// (*.c and *.h), the flags and `clang --version`, so repeated calls are cheap.
// The returned file must not be modified; it lives until the cache is removed.
//
// When clang, wasm-ld, wasi-libc or the wasm32 compiler-rt builtins are
// missing, BuildC skips tb with a message naming the Debian packages to
// install (or fails it when SLUICE_TEST_STRICT=1). A compile error always
// fails tb with the compiler's output.
func BuildC(tb testing.TB, srcDir string) string {
	tb.Helper()
	dir, err := filepath.Abs(srcDir)
	if err != nil {
		tb.Fatalf("plugintest: BuildC: %v", err)
	}
	clang, version, missing := probeCToolchain()
	if missing != "" {
		SkipOrFail(tb, "BuildC %s: %s; install the Debian packages %s", dir, missing, cPackages)
	}
	sources, err := collectSources(dir, func(rel string) bool {
		return filepath.Dir(rel) == "." && (strings.HasSuffix(rel, ".c") || strings.HasSuffix(rel, ".h"))
	})
	if err != nil {
		tb.Fatalf("plugintest: BuildC: %v", err)
	}
	var cFiles []string
	for _, s := range sources {
		if strings.HasSuffix(s, ".c") {
			cFiles = append(cFiles, s)
		}
	}
	if len(cFiles) == 0 {
		tb.Fatalf("plugintest: BuildC: no *.c files in %s", dir)
	}
	key, err := hashInputs(dir, sources, "c", strings.Join(cCompileFlags, " "), version)
	if err != nil {
		tb.Fatalf("plugintest: BuildC: %v", err)
	}
	out, err := buildCached(key, func(tmp string) error {
		args := append(append([]string{}, cCompileFlags...), "-o", tmp)
		args = append(args, cFiles...)
		return runTool(dir, clang, args...)
	})
	if err != nil {
		tb.Fatalf("plugintest: BuildC %s: %v", dir, err)
	}
	return out
}

// probeCToolchain finds clang and checks that it can link wasm32-wasi
// reactors. It returns clang's path and version, or a description of what is
// missing.
func probeCToolchain() (clang, version, missing string) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		return "", "", "clang is not on PATH"
	}
	v, err := output("", clang, "--version")
	if err != nil {
		return "", "", fmt.Sprintf("clang --version: %v", err)
	}
	probes := []struct{ what, arg string }{
		{"wasm-ld (package lld)", "-print-prog-name=wasm-ld"},
		{"wasi-libc (package wasi-libc)", "-print-file-name=libc.a"},
		{"wasm32 compiler-rt builtins (package libclang-rt-14-dev-wasm32)", "-print-libgcc-file-name"},
	}
	for _, p := range probes {
		path, err := output("", clang, "--target=wasm32-wasi", "-rtlib=compiler-rt", p.arg)
		if err != nil || !filepath.IsAbs(path) || !fileExists(path) {
			return "", "", p.what + " not found"
		}
	}
	return clang, v, ""
}

// collectSources lists the regular files under dir accepted by keep (called
// with slash-separated paths relative to dir), sorted.
func collectSources(dir string, keep func(rel string) bool) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && keep(filepath.ToSlash(rel)) {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing sources in %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

// hashInputs hashes the extra strings, then each file's relative path, size
// and contents, into a hex key.
func hashInputs(dir string, files []string, extra ...string) (string, error) {
	h := sha256.New()
	for _, e := range extra {
		fmt.Fprintf(h, "%d:%s\x00", len(e), e)
	}
	for _, rel := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return "", fmt.Errorf("hashing sources: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// cacheDir returns the shared build cache directory, creating it if needed.
func cacheDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "sluice-plugintest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating build cache: %w", err)
	}
	return dir, nil
}

// buildCached returns the cached artifact for key, or runs build with a
// temporary output path in the cache directory and renames the result into
// place. The rename is atomic, so concurrent builders of one key (tests or
// processes) race harmlessly and readers never see a partial file.
func buildCached(key string, build func(tmp string) error) (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, key+".wasm")
	if fileExists(final) {
		return final, nil
	}
	f, err := os.CreateTemp(dir, key+"-*.wasm")
	if err != nil {
		return "", fmt.Errorf("creating build output: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := build(tmp); err != nil {
		return "", err
	}
	data, err := os.ReadFile(tmp)
	if err != nil {
		return "", fmt.Errorf("reading build output: %w", err)
	}
	if !bytes.HasPrefix(data, wasmMagic) {
		return "", fmt.Errorf("build output %s is not a wasm module (%d bytes)", tmp, len(data))
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("storing build output: %w", err)
	}
	return final, nil
}

// wasmMagic is the wasm binary preamble: "\0asm" and version 1.
var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// toolCommand is name with args, run in dir and killed after toolTimeout;
// the caller calls cancel when the command is done.
func toolCommand(dir, name string, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	return cmd, cancel
}

// runTool runs name with args in dir, with a timeout, and returns an error
// carrying the combined output when it fails.
func runTool(dir, name string, args ...string) error {
	cmd, cancel := toolCommand(dir, name, args...)
	defer cancel()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return nil
}

// output runs name with args and returns its trimmed standard output.
func output(dir, name string, args ...string) (string, error) {
	cmd, cancel := toolCommand(dir, name, args...)
	defer cancel()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
