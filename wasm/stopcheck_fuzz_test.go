package wasm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

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
