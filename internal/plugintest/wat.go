package plugintest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// fixtureRel is the hostile fixture directory relative to the module root.
const fixtureRel = "wasm/testdata/hostile"

// Fixture returns the absolute path of the committed hostile guest
// wasm/testdata/hostile/<name>.wasm (see the README there for what each one
// does), found by walking up from the working directory to go.mod. name is a
// bare fixture name such as "oob_log" or "trap_configure". Fixture fails tb
// when the name is malformed or no such fixture exists, listing the known
// names. The file is shared: callers must not modify it.
func Fixture(tb testing.TB, name string) string {
	tb.Helper()
	if name == "" || strings.ContainsAny(name, `/\.`) {
		tb.Fatalf("plugintest: Fixture(%q): want a bare fixture name such as \"oob_log\" (no directory, no extension)", name)
	}
	dir := FixtureDir(tb)
	path := filepath.Join(dir, name+".wasm")
	if !fileExists(path) {
		names, _ := FixtureNames(dir)
		tb.Fatalf("plugintest: Fixture(%q): no %s; known fixtures: %s", name, path, strings.Join(names, ", "))
	}
	return path
}

// FixtureDir returns the absolute path of wasm/testdata/hostile, found by
// walking up from the working directory to go.mod; it fails tb if there is
// none.
func FixtureDir(tb testing.TB) string {
	tb.Helper()
	root, err := moduleRootFrom(".")
	if err != nil {
		tb.Fatalf("plugintest: %v", err)
	}
	return filepath.Join(root, filepath.FromSlash(fixtureRel))
}

// FixtureNames lists the fixtures in dir: the names of its .wat files without
// the extension, sorted.
func FixtureNames(dir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.wat"))
	if err != nil {
		return nil, fmt.Errorf("plugintest: listing fixtures: %w", err)
	}
	names := make([]string, 0, len(matches))
	for _, m := range matches {
		names = append(names, strings.TrimSuffix(filepath.Base(m), ".wat"))
	}
	sort.Strings(names)
	return names, nil
}

// CheckWatFixtures checks a directory of hand-written fixtures (dir holds
// <name>.wat sources and the <name>.wasm built from each): dir has at least
// one .wat, every .wasm has its .wat, and every .wasm has the bytes
// wat2wasm builds from its .wat today, with the options (--debug-names…)
// that the .wat's own "Regenerate: wat2wasm …" comment line names, if it
// has one. A stale or missing .wasm is an error naming it and where the
// regenerate command is. Without wat2wasm on PATH (Debian package wabt)
// the byte check is skipped, or fails under SLUICE_TEST_STRICT=1
// (SkipOrFail).
func CheckWatFixtures(tb testing.TB, dir string) {
	tb.Helper()
	names, err := FixtureNames(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(names) == 0 {
		tb.Fatalf("no .wat fixtures in %s", dir)
	}
	wasms, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, w := range wasms {
		if name := strings.TrimSuffix(filepath.Base(w), ".wasm"); !slices.Contains(names, name) {
			tb.Errorf("%s has no %s.wat source", w, name)
		}
	}
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		SkipOrFail(tb, "wat2wasm is not on PATH; install the Debian package wabt to check the fixtures in %s against their sources", dir)
	}
	tmp := tb.TempDir()
	for _, name := range names {
		out := filepath.Join(tmp, name+".wasm")
		src := filepath.Join(dir, name+".wat")
		text, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		args := append(regenerateOptions(text), src, "-o", out)
		cmd := exec.Command(wat2wasm, args...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			tb.Errorf("wat2wasm %s.wat: %v\n%s", name, err, msg)
			continue
		}
		want, err := os.ReadFile(out)
		if err != nil {
			tb.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
		if err != nil {
			tb.Errorf("%s.wasm: %v (regenerate: see %s/README.md)", name, err, dir)
			continue
		}
		if !bytes.Equal(got, want) {
			tb.Errorf("%s.wasm is stale: it differs from wat2wasm %s %s.wat (regenerate: see %s.wat's header or %s/README.md)",
				name, strings.Join(regenerateOptions(text), " "), name, filepath.Join(dir, name), dir)
		}
	}
}

// regenerateOptions returns the options ("--" words) of the first
// "Regenerate: wat2wasm …" line of a .wat source, or none.
func regenerateOptions(wat []byte) []string {
	for line := range strings.Lines(string(wat)) {
		_, cmd, ok := strings.Cut(line, "Regenerate: wat2wasm ")
		if !ok {
			continue
		}
		var opts []string
		for _, w := range strings.Fields(cmd) {
			if strings.HasPrefix(w, "--") {
				opts = append(opts, w)
			}
		}
		return opts
	}
	return nil
}

// moduleRootFrom walks up from start to the first directory holding go.mod.
func moduleRootFrom(start string) (string, error) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return "", fmt.Errorf("finding go.mod: %w", err)
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			wd, _ := os.Getwd()
			return "", fmt.Errorf("no go.mod in %s or any parent directory", wd)
		}
		dir = parent
	}
}
