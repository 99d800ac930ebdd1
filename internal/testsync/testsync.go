// Package testsync holds the two helpers tests of every package need when
// goroutines are involved: a log buffer safe to read while others write,
// and a bounded wait for a condition. It imports nothing of Sluice, so
// every package's tests can use it (package proxy's included, which
// cannot import internal/plugintest). Only tests import it.
package testsync

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// LogBuffer is a log sink for tests (an io.Writer for slog handlers) whose
// contents can be read while plugins and servers still write to it. It is
// safe for concurrent use; the zero value is ready to use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it never fails.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns a copy of everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor polls cond every 5ms until it holds, failing the test when it
// still does not after bound (a bound for a starved CI machine, not a
// claim about speed).
func WaitFor(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
