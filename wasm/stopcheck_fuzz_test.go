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
