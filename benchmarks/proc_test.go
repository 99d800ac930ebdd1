package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the harness's helper processes
// (selfCommand re-executes os.Executable) and as the signal-handling
// helper of TestSignal*.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(runChild(os.Args[2:]))
	}
	if os.Getenv("BENCH_NOFILE_HELPER") != "" {
		// Report the open-file limit a child gets after raiseNoFile.
		raiseNoFile()
		out, err := exec.Command("sh", "-c", "ulimit -n").Output()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Print(string(out))
		os.Exit(0)
	}
	if mode := os.Getenv("BENCH_SIGNAL_HELPER"); mode != "" {
		os.Exit(signalHelper(mode))
	}
	os.Exit(m.Run())
}

// signalHelper mirrors run(): a procSet, the signal handler, one child.
// It prints the child's pid, then waits. In mode "cooperative" it cleans
// up when the handler cancels; in mode "stuck" it never notices, so only
// the handler's second-signal path can end it.
func signalHelper(mode string) int {
	procs := newProcSet()
	defer procs.StopAll()
	ctx, cancel := context.WithCancel(context.Background())
	stop := handleSignals(procs, func(os.Signal) { cancel() })
	defer stop()
	p, err := procs.Start("sleeper", exec.Command("sleep", "60"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println(p.Pid())
	if mode == "stuck" {
		select {} // the handler must exit the process
	}
	<-ctx.Done()
	return 130
}

func TestParseProcStat(t *testing.T) {
	line := "1234 (we) (ird name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 1 0 100 1000 10 18446744073709551615\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{State: 'S', PPid: 1, PGrp: 1234, UTime: 250, STime: 37}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	for _, bad := range []string{
		"",
		"1 (x S 1 1",
		"1 (x) S 1 1 1 0 -1 0 0 0 0 0",
		"1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 1",
		"1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 1",
		"1 (x) S p 1 1 0 -1 0 0 0 0 0 1 1",
		"1 (x) SS 1 1 1 0 -1 0 0 0 0 0 1 1",
	} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("1234 (sluice) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 1 0"))
	f.Add([]byte("1 ()) R 0 0 0 0 0 0 0 0 0 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseProcStat(b)
		if err == nil && (st.UTime < 0 || st.STime < 0) {
			t.Fatalf("negative times %+v from %q", st, b)
		}
	})
}

func TestReadOwnStat(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPid != os.Getppid() || st.PGrp != syscall.Getpgrp() {
		t.Fatalf("own stat %+v: ppid/pgrp differ from %d/%d", st, os.Getppid(), syscall.Getpgrp())
	}
	if _, err := readProcStat(-1); err == nil {
		t.Fatal("readProcStat(-1) succeeded")
	}
}

func TestParseVmRSS(t *testing.T) {
	v, err := parseVmRSS("Name:\tx\nVmPeak:\t 200 kB\nVmRSS:\t   1234 kB\nThreads: 1\n")
	if err != nil || v != 1234 {
		t.Fatalf("got %d, %v", v, err)
	}
	for _, bad := range []string{"", "VmRSS: 12 MB", "VmRSS: x kB", "VmRSS: -1 kB", "VmRSS:"} {
		if _, err := parseVmRSS(bad); err == nil {
			t.Errorf("parseVmRSS(%q) accepted", bad)
		}
	}
	if v, err := rssKiB(os.Getpid()); err != nil || v <= 0 {
		t.Fatalf("own RSS %d, %v", v, err)
	}
}

// readPid waits for the first line of p's output and parses it as a pid.
func readPid(t *testing.T, p *proc) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if line, _, ok := strings.Cut(p.Output(), "\n"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("child printed %q", line)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("child printed no pid; output %q", p.Output())
	return 0
}

func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still alive", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestStopAllKillsGroup starts a child that forks a grandchild (as nginx
// forks its worker) and checks StopAll leaves neither behind.
func TestStopAllKillsGroup(t *testing.T) {
	procs := newProcSet()
	p, err := procs.Start("fake proxy", exec.Command("sh", "-c", "sleep 60 & echo $!; wait"))
	if err != nil {
		t.Fatal(err)
	}
	grandchild := readPid(t, p)
	if !alive(p.Pid()) || !alive(grandchild) {
		t.Fatal("children not running")
	}
	if st, err := readProcStat(grandchild); err != nil || st.PGrp != p.Pid() {
		t.Fatalf("grandchild stat %+v, %v: want process group %d", st, err, p.Pid())
	}
	procs.StopAll()
	waitGone(t, p.Pid(), grandchild)
	if !p.Exited() {
		t.Fatal("proc not reaped")
	}
	if _, err := procs.Start("late", exec.Command("true")); err == nil {
		t.Fatal("Start after StopAll succeeded")
	}
	procs.StopAll() // idempotent
}

// TestStopEscalatesToKill checks a child ignoring SIGTERM is killed after
// the grace period.
func TestStopEscalatesToKill(t *testing.T) {
	old := stopGrace
	stopGrace = 200 * time.Millisecond
	defer func() { stopGrace = old }()
	procs := newProcSet()
	defer procs.StopAll()
	p, err := procs.Start("stubborn", exec.Command("sh", "-c", `trap "" TERM; echo $$; while :; do sleep 1; done`))
	if err != nil {
		t.Fatal(err)
	}
	readPid(t, p)
	start := time.Now()
	procs.Stop(p)
	if !p.Exited() {
		t.Fatal("not stopped")
	}
	if d := time.Since(start); d < stopGrace {
		t.Fatalf("stopped after %v, before the grace period: SIGTERM was not ignored?", d)
	}
	waitGone(t, p.Pid())
}

func TestTreeTicksCountsDescendants(t *testing.T) {
	procs := newProcSet()
	defer procs.StopAll()
	// The shell only waits; its child burns CPU for a fraction of a second.
	p, err := procs.Start("burner", exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 60'; sleep 60`))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		own, err := readProcStat(p.Pid())
		if err != nil {
			t.Fatal(err)
		}
		total, err := treeTicks(p.Pid())
		if err != nil {
			t.Fatal(err)
		}
		if total > own.UTime+own.STime+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree ticks %d never exceeded the parent's own %d", total, own.UTime+own.STime)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := treeTicks(-1); err == nil {
		t.Fatal("treeTicks(-1) succeeded")
	}
}

func runSignalHelper(t *testing.T, mode string, signals int) (exit int, child int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "BENCH_SIGNAL_HELPER="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper printed nothing: %v", err)
	}
	child, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper printed %q", line)
	}
	for i := 0; i < signals; i++ {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("helper did not exit after the signal")
	}
	return cmd.ProcessState.ExitCode(), child
}

// TestSignalStopsChildren: SIGTERM cancels the run, whose cleanup stops
// the child.
func TestSignalStopsChildren(t *testing.T) {
	code, child := runSignalHelper(t, "cooperative", 1)
	if code != 130 {
		t.Fatalf("exit code %d, want 130", code)
	}
	waitGone(t, child)
}

// TestSecondSignalForcesCleanup: a run that does not react to the first
// signal is ended by the second, which still stops the child.
func TestSecondSignalForcesCleanup(t *testing.T) {
	code, child := runSignalHelper(t, "stuck", 2)
	if code != 130 {
		t.Fatalf("exit code %d, want 130", code)
	}
	waitGone(t, child)
}

func TestRingBuffer(t *testing.T) {
	r := newRingBuffer(5)
	_, _ = r.Write([]byte("abc"))
	_, _ = r.Write([]byte("defg"))
	if got := r.String(); got != "cdefg" {
		t.Fatalf("got %q", got)
	}
	mark := r.Written()
	if mark != 7 || r.Since(mark) != "" {
		t.Fatalf("Written %d, Since %q", mark, r.Since(mark))
	}
	_, _ = r.Write([]byte("hi"))
	if got := r.Since(mark); got != "hi" {
		t.Fatalf("Since = %q, want hi", got)
	}
	_, _ = r.Write([]byte("0123456789"))
	if got := r.Since(mark); got != "56789" {
		t.Fatalf("Since past the buffer = %q, want the last 5 bytes", got)
	}
}

// TestChildrenInheritRaisedNoFile starts the harness code with a low soft
// limit and checks that its children get the hard limit.
func TestChildrenInheritRaisedNoFile(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 1024 {
		t.Skipf("hard open-file limit %d too low to test", lim.Max)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `ulimit -Sn 512 && exec "$0" -test.run='^$'`, exe)
	cmd.Env = append(os.Environ(), "BENCH_NOFILE_HELPER=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	want := strconv.FormatUint(lim.Max, 10)
	if lim.Max == ^uint64(0) {
		want = "unlimited"
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("child open-file limit %s, want the hard limit %s", got, want)
	}
}
