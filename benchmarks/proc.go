package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process group gets between SIGTERM and SIGKILL
// (a variable so tests can shorten it).
var stopGrace = 5 * time.Second

// procSet owns every long-running child the harness starts. Each child runs
// in its own process group (pgid == its pid), so stopping it also stops
// what it forked (nginx workers). procSet is safe for concurrent use: the
// signal handler and the deferred cleanup may call StopAll at the same time.
type procSet struct {
	mu     sync.Mutex
	procs  map[int]*proc
	closed bool
}

// proc is one started child. Its output is kept in a bounded buffer for
// error messages.
type proc struct {
	name   string
	cmd    *exec.Cmd
	output *ringBuffer
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's error; read after done is closed
}

// Pid is the child's process id (also its process group id).
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the child has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns the last bytes the child wrote to stdout and stderr.
func (p *proc) Output() string { return p.output.String() }

func newProcSet() *procSet { return &procSet{procs: map[int]*proc{}} }

// setProcessGroup puts cmd in a new process group and asks the kernel to
// SIGKILL it if the harness dies without cleaning up (a SIGKILL of the
// harness; grandchildren such as nginx workers are then orphaned, but their
// master is gone and they exit when it does not answer).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Start starts cmd in its own process group and registers it. Stdout and
// stderr are captured unless already set. It fails after StopAll.
func (s *procSet) Start(name string, cmd *exec.Cmd) (*proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("benchmarks: not starting %s: shutting down", name)
	}
	p := &proc{name: name, cmd: cmd, output: newRingBuffer(16 << 10), done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.output
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.output
	}
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchmarks: start %s (%s): %w", name, strings.Join(cmd.Args, " "), err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.procs[cmd.Process.Pid] = p
	return p, nil
}

// Stop stops p's process group: SIGTERM, then SIGKILL after stopGrace, and
// waits for p to be reaped. Members of the group still alive after the
// leader exits (nginx workers) are killed too. Stopping a stopped proc is a
// no-op.
func (s *procSet) Stop(p *proc) {
	s.mu.Lock()
	delete(s.procs, p.Pid())
	s.mu.Unlock()
	stopGroup(p)
}

// StopAll stops every registered child, in parallel, and refuses new ones.
func (s *procSet) StopAll() {
	s.mu.Lock()
	s.closed = true
	ps := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		ps = append(ps, p)
	}
	s.procs = map[int]*proc{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopGroup(p)
		}()
	}
	wg.Wait()
}

func stopGroup(p *proc) {
	pgid := p.Pid()
	if !p.Exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	// The leader is reaped; a pgid is not reused while any member lives,
	// so kill the group only when members remain.
	if len(groupMembers(pgid)) > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		deadline := time.Now().Add(stopGrace)
		for len(groupMembers(pgid)) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// handleSignals calls onSignal once on the first SIGINT or SIGTERM; on a
// second one, or if the harness has not exited stopGrace*3 after the
// first, it stops every child and exits with status 130. The returned
// function stops listening.
func handleSignals(procs *procSet, onSignal func(os.Signal)) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	quit := make(chan struct{})
	go func() {
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-quit:
			return
		}
		onSignal(sig)
		select {
		case <-ch:
		case <-time.After(3 * stopGrace):
		case <-quit:
			return
		}
		fmt.Fprintln(os.Stderr, "benchmarks: stopping children and exiting")
		procs.StopAll()
		os.Exit(130)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(quit)
		})
	}
}

// procStat is what the harness reads from /proc/<pid>/stat.
type procStat struct {
	State        byte
	PPid, PGrp   int
	UTime, STime int64 // clock ticks
}

// parseProcStat parses the text of /proc/<pid>/stat. The command name is
// in parentheses and may itself contain spaces and parentheses, so fields
// are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("benchmarks: /proc stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(3) ppid(4) pgrp(5) … utime(14) stime(15).
	if len(f) < 13 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("benchmarks: /proc stat: %d fields after the name, want at least 13", len(f))
	}
	var st procStat
	st.State = f[0][0]
	ints := []*int64{nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, &st.UTime, &st.STime}
	for k, dst := range ints {
		if dst == nil {
			continue
		}
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil || v < 0 {
			return procStat{}, fmt.Errorf("benchmarks: /proc stat: field %d is %q, want a count", k+3, f[k])
		}
		*dst = v
	}
	for k, dst := range []*int{&st.PPid, &st.PGrp} {
		v, err := strconv.Atoi(f[k+1])
		if err != nil {
			return procStat{}, fmt.Errorf("benchmarks: /proc stat: field %d is %q, want a pid", k+4, f[k+1])
		}
		*dst = v
	}
	return st, nil
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("benchmarks: read stat of pid %d: %w", pid, err)
	}
	return parseProcStat(b)
}

// allStats reads /proc/<pid>/stat for every live process. Processes that
// exit while it scans are skipped.
func allStats() map[int]procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	m := make(map[int]procStat, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil {
			m[pid] = st
		}
	}
	return m
}

// groupMembers lists the live (not zombie) processes in process group pgid.
func groupMembers(pgid int) []int {
	var pids []int
	for pid, st := range allStats() {
		if st.PGrp == pgid && st.State != 'Z' && st.State != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// treeTicks sums utime+stime, in clock ticks, of root and all its live
// descendants (an nginx master and its worker). Time of children that
// already exited is not counted; the proxies under test keep theirs.
func treeTicks(root int) (int64, error) {
	stats := allStats()
	rs, ok := stats[root]
	if !ok {
		return 0, fmt.Errorf("benchmarks: pid %d is gone", root)
	}
	kids := map[int][]int{}
	for pid, st := range stats {
		kids[st.PPid] = append(kids[st.PPid], pid)
	}
	total := rs.UTime + rs.STime
	queue := append([]int(nil), kids[root]...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		st := stats[pid]
		total += st.UTime + st.STime
		queue = append(queue, kids[pid]...)
	}
	return total, nil
}

// treePids lists root and its live descendants.
func treePids(root int) []int {
	kids := map[int][]int{}
	for pid, st := range allStats() {
		kids[st.PPid] = append(kids[st.PPid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, kids[out[i]]...)
	}
	return out
}

// treeRSSKiB sums VmRSS of pids (from treePids); pids that exited since
// count nothing, but the first (the root) must be alive.
func treeRSSKiB(pids []int) (int64, error) {
	var total int64
	for i, pid := range pids {
		v, err := rssKiB(pid)
		if err != nil {
			if i == 0 {
				return 0, err
			}
			continue
		}
		total += v
	}
	return total, nil
}

// rssKiB returns VmRSS of pid in KiB, from /proc/<pid>/status.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("benchmarks: read status of pid %d: %w", pid, err)
	}
	return parseVmRSS(string(b))
}

// parseVmRSS finds "VmRSS:   1234 kB" in the text of /proc/<pid>/status.
func parseVmRSS(s string) (int64, error) {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("benchmarks: /proc status: bad VmRSS line %q", line)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("benchmarks: /proc status: bad VmRSS value %q", f[0])
		}
		return v, nil
	}
	return 0, errors.New("benchmarks: /proc status: no VmRSS line")
}

// ringBuffer keeps the last size bytes written to it. Safe for concurrent
// use (a child's stdout and stderr may write at once).
type ringBuffer struct {
	mu      sync.Mutex
	buf     []byte
	size    int
	written int64 // bytes ever written
}

func newRingBuffer(size int) *ringBuffer { return &ringBuffer{size: size} }

func (r *ringBuffer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	r.written += int64(len(p))
	if over := len(r.buf) - r.size; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
	}
	return len(p), nil
}

func (r *ringBuffer) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}

// Written is the number of bytes ever written; pass it to Since later.
func (r *ringBuffer) Written() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written
}

// Since returns what was written after Written returned mark, or its last
// size bytes when more has been written since.
func (r *ringBuffer) Since(mark int64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.written - mark
	if n <= 0 {
		return ""
	}
	if n > int64(len(r.buf)) {
		n = int64(len(r.buf))
	}
	return string(r.buf[int64(len(r.buf))-n:])
}
