//go:build !linux

package wasm

// haveThreadClock: no per-thread CPU clock here; deadlines are wall-clock.
const haveThreadClock = false

// threadClock is unavailable on this OS: deadlines are wall-clock.
type threadClock struct{}

func currentThreadClock() (threadClock, bool) { return threadClock{}, false }

func (threadClock) read() (int64, bool) { return 0, false }
