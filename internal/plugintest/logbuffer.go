package plugintest

import (
	"bytes"
	"sync"
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
