package plugintest

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ascFlags are the AssemblyScript compiler flags BuildAS uses after the
// entry file and the output path; plugins/assemblyscript/build.sh runs the
// same command. abort=abort_proc_exit routes aborts to the SDK's handler,
// which logs and calls wasi_unstable.proc_exit(255).
var ascFlags = []string{"--use", "abort=abort_proc_exit", "--optimize"}

// ascEntry is the entry file, relative to the plugin directory.
const ascEntry = "assembly/index.ts"

// BuildAS compiles the AssemblyScript plugin in dir (a directory holding
// package.json, package-lock.json and assembly/index.ts, with dependencies
// installed by `npm ci`) and returns the absolute path of the .wasm file. The
// result is cached under os.TempDir()/sluice-plugintest/, keyed by a hash of
// package.json, package-lock.json, every file under assembly/, the flags and
// `node --version`. The returned file must not be modified; it lives until
// the cache is removed. BuildAS never touches the network and never writes
// into dir.
//
// When node is not on PATH, or dir/node_modules lacks the asc compiler (run
// `npm ci` in dir), BuildAS skips tb with a message saying so (or fails it
// when SLUICE_TEST_STRICT=1). A compile error always fails tb with the
// compiler's output.
func BuildAS(tb testing.TB, dir string) string {
	tb.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatalf("plugintest: BuildAS: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		SkipOrFail(tb, "BuildAS %s: node is not on PATH; install Node.js 20 and npm (Debian: nodejs npm), then run `npm ci` in %s", abs, abs)
	}
	asc := filepath.Join(abs, "node_modules", "assemblyscript", "bin", "asc")
	if !fileExists(asc) {
		SkipOrFail(tb, "BuildAS %s: AssemblyScript compiler not installed; run `npm ci` in %s", abs, abs)
	}
	nodeVersion, err := output("", node, "--version")
	if err != nil {
		tb.Fatalf("plugintest: BuildAS: %v", err)
	}
	sources, err := collectSources(abs, func(rel string) bool {
		return rel == "package.json" || rel == "package-lock.json" ||
			(strings.HasPrefix(rel, "assembly/") && !strings.HasSuffix(rel, "~"))
	})
	if err != nil {
		tb.Fatalf("plugintest: BuildAS: %v", err)
	}
	if !slices.Contains(sources, "package-lock.json") || !slices.Contains(sources, ascEntry) {
		tb.Fatalf("plugintest: BuildAS: %s needs package-lock.json and %s", abs, ascEntry)
	}
	key, err := hashInputs(abs, sources, "assemblyscript", strings.Join(ascFlags, " "), nodeVersion)
	if err != nil {
		tb.Fatalf("plugintest: BuildAS: %v", err)
	}
	out, err := buildCached(key, func(tmp string) error {
		args := append([]string{asc, ascEntry, "-b", tmp}, ascFlags...)
		return runTool(abs, node, args...)
	})
	if err != nil {
		tb.Fatalf("plugintest: BuildAS %s: %v", abs, err)
	}
	return out
}
