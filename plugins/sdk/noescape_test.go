package sdk

import (
	"io/fs"
	"os"
	"strings"
	"testing"
)

// TestImportsAreNoescape checks that every host function the SDK imports
// is declared //go:noescape: without it the compiler moves each result
// variable passed to the host (an address, a size, a CAS) to the heap,
// and every host call that returns data allocates in the guest.
func TestImportsAreNoescape(t *testing.T) {
	dir := os.DirFS(".")
	names, _ := fs.Glob(dir, "*_wasip1.go")
	imports := 0
	for _, name := range names {
		src, err := fs.ReadFile(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(src), "\n")
		for i, l := range lines {
			if !strings.HasPrefix(l, "//go:wasmimport ") {
				continue
			}
			imports++
			if i+1 == len(lines) || strings.TrimSpace(lines[i+1]) != "//go:noescape" {
				t.Errorf("%s:%d: %s is not followed by //go:noescape", name, i+1, l)
			}
		}
	}
	if imports < 30 {
		t.Errorf("found %d //go:wasmimport lines in %d files, want the SDK's 30 or more", imports, len(names))
	}
}
