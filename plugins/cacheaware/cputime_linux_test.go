//go:build linux

package main

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// threadCPU returns the CPU time the calling OS thread has used so far
// (CLOCK_THREAD_CPUTIME_ID), or false where it cannot tell. With the
// goroutine locked to its thread, the difference across a request is
// that request's CPU: the guest's, the host functions', nothing of other
// threads (the garbage collector's workers) and no time spent waiting.
func threadCPU() (time.Duration, bool) {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// lockThread keeps the calling goroutine on its OS thread, so that
// threadCPU measures its work alone, until the returned func is called.
func lockThread() (unlock func()) {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}
