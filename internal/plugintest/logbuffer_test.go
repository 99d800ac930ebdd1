package plugintest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestLogBufferHammer writes from several goroutines while reading; under
// -race it fails if LogBuffer is not safe for concurrent use, and it checks
// that no write is lost or torn.
func TestLogBufferHammer(t *testing.T) {
	const writers, lines = 8, 200
	var b LogBuffer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&b, "w%d line %d\n", w, i)
				if i%50 == 0 {
					_ = b.String()
				}
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	seen := map[string]bool{}
	for _, l := range got {
		seen[l] = true
	}
	for w := range writers {
		for i := range lines {
			if l := fmt.Sprintf("w%d line %d", w, i); !seen[l] {
				t.Fatalf("line %q lost or torn", l)
			}
		}
	}
}
