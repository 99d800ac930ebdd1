package wasm

import "golang.org/x/sys/unix"

// haveThreadClock: deadlines count the calling thread's CPU time.
const haveThreadClock = true

// threadClock is the CPU-time clock of one OS thread, readable from any
// thread of the process: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED), that
// is (^tid << 3) | 6 (see clock_getcpuclockid(3) and the kernel's
// include/linux/posix-timers.h).
type threadClock int32

// currentThreadClock returns the calling thread's CPU clock. The
// goroutine must be locked to its thread.
func currentThreadClock() (threadClock, bool) {
	return threadClock((^int32(unix.Gettid()))<<3 | 6), true
}

// read returns the thread's CPU time in ns; false if the thread is gone.
func (c threadClock) read() (int64, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(c), &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}
