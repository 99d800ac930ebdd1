// Package testsync holds the helpers tests of every package need when
// goroutines are involved: a log buffer safe to read while others write,
// a bounded wait for a condition, clients kept busy (Load), Grep to quote
// the relevant lines of a log or /metrics text in a failure message,
// NewRequest and the OpenAIError envelope. It imports nothing of Sluice, so
// every package's tests can use it (package proxy's included, which
// cannot import internal/plugintest). Only tests import it.
package testsync

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
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

// Load keeps clients busy for a test: StartLoad runs n goroutines that
// each call do with their index, again and again, until Stop. It is safe
// for concurrent use.
type Load struct {
	stop         chan struct{}
	wg           sync.WaitGroup
	sent, failed atomic.Int64
}

// StartLoad starts n goroutines calling do(i) in a loop; a call that
// returns an error counts as failed (do reports the details itself).
func StartLoad(n int, do func(i int) error) *Load {
	l := &Load{stop: make(chan struct{})}
	for i := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				if err := do(i); err != nil {
					l.failed.Add(1)
				}
				l.sent.Add(1)
			}
		}()
	}
	return l
}

// Await waits until n more calls have returned than when it was called,
// failing the test after bound.
func (l *Load) Await(t testing.TB, bound time.Duration, n int64) {
	t.Helper()
	from := l.sent.Load()
	WaitFor(t, bound, "more calls under load", func() bool { return l.sent.Load() >= from+n })
}

// Stop ends the calls, waits for those running, and returns how many
// were made and how many failed.
func (l *Load) Stop() (sent, failed int64) {
	close(l.stop)
	l.wg.Wait()
	return l.sent.Load(), l.failed.Load()
}

// Grep returns the lines of text that contain sub, joined by "\n" (""
// when none does), for a failure message that quotes the relevant part of
// a log or of /metrics output rather than all of it.
func Grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
