package exposition

import (
	"io"

	"github.com/VictoriaMetrics/metrics"
)

// WriteRuntime writes the Go runtime (go_*) and process (process_*)
// metrics of VictoriaMetrics/metrics: memory, GC, goroutines, CPU time,
// resident memory, open and maximum file descriptors, start time. Pass it
// to Write (inside the write callback) so that they get their metadata.
func WriteRuntime(w io.Writer) {
	metrics.WriteGoMetrics(w)
	metrics.WriteProcMetrics(w)
	metrics.WriteFDMetrics(w)
}

// typeFixes corrects the TYPE the library declares: these /proc/self/io
// values only grow (read(2)/write(2) totals since the process started), so
// they are counters, as their "_total" names say; the library calls them
// gauges, which promtool flags.
var typeFixes = map[string]string{
	"process_io_read_bytes_total":            "counter",
	"process_io_written_bytes_total":         "counter",
	"process_io_read_syscalls_total":         "counter",
	"process_io_write_syscalls_total":        "counter",
	"process_io_storage_read_bytes_total":    "counter",
	"process_io_storage_written_bytes_total": "counter",
}

// dropped are library families whose names break Prometheus's naming
// rules (a counter without "_total", a "_count" suffix on a
// non-histogram), which promtool flags and which cannot be fixed without
// renaming. Sluice never calls cgo or runtime.GC, and the CPU count is
// go_gomaxprocs's bound, so nothing an operator needs is lost.
var dropped = map[string]bool{
	"go_cgo_calls_count": true,
	"go_gc_forced_count": true,
	"go_cpu_count":       true,
}

func init() {
	Describe(map[string]string{
		"go_goroutines":                       "Number of goroutines that currently exist.",
		"go_threads":                          "Number of OS threads created.",
		"go_gomaxprocs":                       "GOMAXPROCS: the number of OS threads that can run Go code at once.",
		"go_info":                             "Go version the binary was built with (label version); always 1.",
		"go_info_ext":                         "Go runtime settings (GOGC, GOMEMLIMIT) as labels; always 1.",
		"go_memlimit_bytes":                   "Go runtime soft memory limit (GOMEMLIMIT).",
		"go_gc_duration_seconds":              "Summary of stop-the-world GC pause durations.",
		"go_gc_pauses_seconds":                "Histogram of stop-the-world GC pause latencies.",
		"go_gc_cpu_seconds_total":             "CPU time spent by the Go garbage collector.",
		"go_gc_mark_assist_cpu_seconds_total": "CPU time goroutines spent assisting the garbage collector.",
		"go_scavenge_cpu_seconds_total":       "CPU time spent returning unused memory to the OS.",
		"go_sched_latencies_seconds":          "Histogram of the time goroutines waited runnable before running.",
		"go_mutex_wait_seconds_total":         "Time goroutines spent blocked on sync.Mutex or sync.RWMutex.",
		"go_memstats_alloc_bytes":             "Bytes of allocated heap objects.",
		"go_memstats_alloc_bytes_total":       "Bytes allocated for heap objects since the process started.",
		"go_memstats_buck_hash_sys_bytes":     "Bytes of memory in profiling bucket hash tables.",
		"go_memstats_frees_total":             "Heap objects freed since the process started.",
		"go_memstats_gc_cpu_fraction":         "Fraction of the program's CPU time used by the GC since it started.",
		"go_memstats_gc_sys_bytes":            "Bytes of memory in garbage collection metadata.",
		"go_memstats_heap_alloc_bytes":        "Bytes of allocated heap objects.",
		"go_memstats_heap_idle_bytes":         "Bytes in idle (unused) heap spans.",
		"go_memstats_heap_inuse_bytes":        "Bytes in in-use heap spans.",
		"go_memstats_heap_objects":            "Number of allocated heap objects.",
		"go_memstats_heap_released_bytes":     "Bytes of physical memory returned to the OS.",
		"go_memstats_heap_sys_bytes":          "Bytes of heap memory obtained from the OS.",
		"go_memstats_last_gc_time_seconds":    "Time the last garbage collection finished, in seconds since the epoch.",
		"go_memstats_lookups_total":           "Pointer lookups performed by the runtime.",
		"go_memstats_mallocs_total":           "Heap objects allocated since the process started.",
		"go_memstats_mcache_inuse_bytes":      "Bytes of allocated mcache structures.",
		"go_memstats_mcache_sys_bytes":        "Bytes of memory obtained from the OS for mcache structures.",
		"go_memstats_mspan_inuse_bytes":       "Bytes of allocated mspan structures.",
		"go_memstats_mspan_sys_bytes":         "Bytes of memory obtained from the OS for mspan structures.",
		"go_memstats_next_gc_bytes":           "Target heap size of the next garbage collection.",
		"go_memstats_other_sys_bytes":         "Bytes of memory in miscellaneous off-heap runtime allocations.",
		"go_memstats_stack_inuse_bytes":       "Bytes in stack spans.",
		"go_memstats_stack_sys_bytes":         "Bytes of stack memory obtained from the OS.",
		"go_memstats_sys_bytes":               "Total bytes of memory obtained from the OS.",

		"process_cpu_seconds_total":                     "User and system CPU time spent, in seconds.",
		"process_cpu_seconds_user_total":                "User CPU time spent, in seconds.",
		"process_cpu_seconds_system_total":              "System CPU time spent, in seconds.",
		"process_major_pagefaults_total":                "Major page faults (pages read from disk).",
		"process_minor_pagefaults_total":                "Minor page faults.",
		"process_num_threads":                           "Number of OS threads of the process.",
		"process_resident_memory_bytes":                 "Resident set size in bytes.",
		"process_resident_memory_peak_bytes":            "Peak resident set size in bytes.",
		"process_resident_memory_anon_bytes":            "Resident anonymous memory in bytes.",
		"process_resident_memory_file_bytes":            "Resident file-mapped memory in bytes.",
		"process_resident_memory_shared_bytes":          "Resident shared memory in bytes.",
		"process_virtual_memory_bytes":                  "Virtual memory size in bytes.",
		"process_virtual_memory_peak_bytes":             "Peak virtual memory size in bytes.",
		"process_start_time_seconds":                    "Start time of the process since the Unix epoch, in seconds.",
		"process_open_fds":                              "Number of open file descriptors.",
		"process_max_fds":                               "Maximum number of open file descriptors (RLIMIT_NOFILE).",
		"process_io_read_bytes_total":                   "Bytes read by read(2) and similar calls.",
		"process_io_written_bytes_total":                "Bytes written by write(2) and similar calls.",
		"process_io_read_syscalls_total":                "Read system calls.",
		"process_io_write_syscalls_total":               "Write system calls.",
		"process_io_storage_read_bytes_total":           "Bytes read from storage.",
		"process_io_storage_written_bytes_total":        "Bytes written to storage.",
		"process_pressure_cpu_waiting_seconds_total":    "Time some of the process's tasks waited for CPU (cgroup PSI).",
		"process_pressure_cpu_stalled_seconds_total":    "Time all of the process's tasks were stalled on CPU (cgroup PSI).",
		"process_pressure_io_waiting_seconds_total":     "Time some tasks waited for I/O (cgroup PSI).",
		"process_pressure_io_stalled_seconds_total":     "Time all tasks were stalled on I/O (cgroup PSI).",
		"process_pressure_memory_waiting_seconds_total": "Time some tasks waited for memory (cgroup PSI).",
		"process_pressure_memory_stalled_seconds_total": "Time all tasks were stalled on memory (cgroup PSI).",
		"process_cgroup_cpu_throttled_seconds_total":    "Time the process's cgroup was throttled by its CPU limit.",
	})
}
