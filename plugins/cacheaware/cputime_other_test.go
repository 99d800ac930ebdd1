//go:build !unix && !wasip1

package main

import "time"

// processCPU reports that the CPU time is unknown here.
func processCPU() (time.Duration, bool) { return 0, false }
