//go:build !linux && !wasip1

package main

import "time"

// threadCPU reports that the thread's CPU time is unknown here.
func threadCPU() (time.Duration, bool) { return 0, false }

// lockThread does nothing where threadCPU cannot tell.
func lockThread() (unlock func()) { return func() {} }
