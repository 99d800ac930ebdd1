package sdk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportsAreNoescape checks that every host function the SDK imports
// is declared //go:noescape: without it the compiler moves each result
// variable passed to the host (an address, a size, a CAS) to the heap,
// and every host call that returns data allocates in the guest.
func TestImportsAreNoescape(t *testing.T) {
	files, err := filepath.Glob("*_wasip1.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *_wasip1.go files: %v", err)
	}
	imports := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if !strings.HasPrefix(l, "//go:wasmimport ") {
				continue
			}
			imports++
			if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "//go:noescape" {
				t.Errorf("%s:%d: %s is not followed by //go:noescape", f, i+1, l)
			}
		}
	}
	if imports < 30 {
		t.Errorf("found %d //go:wasmimport lines, want the SDK's 30 or more", imports)
	}
}
