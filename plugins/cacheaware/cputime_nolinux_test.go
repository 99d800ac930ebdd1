//go:build !linux && !wasip1

package main

import "time"

// threadCPU reports that the thread's CPU time is unknown here.
func threadCPU() (time.Duration, bool) { return 0, false }
