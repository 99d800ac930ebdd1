package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// sluiceBinary builds the command once per test run.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "sluice")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// runningSluice is the binary running with a config, its JSON logs
// collected.
type runningSluice struct {
	cmd  *exec.Cmd
	base string
	logs chan string
}

// startSluice runs the binary with config (hostname, port and JSON logs
// added) and waits for /ready.
func startSluice(t *testing.T, config string) *runningSluice {
	t.Helper()
	port := freePort(t)
	path := writeConfig(t, "hostname: 127.0.0.1\nport: "+strconv.Itoa(port)+"\nlog: {format: json}\n"+config)
	return startSluiceArgs(t, port, "-config", path)
}

// startSluiceArgs runs the binary with args, which make it listen on
// 127.0.0.1:port and log JSON, and waits for /ready.
func startSluiceArgs(t *testing.T, port int, args ...string) *runningSluice {
	t.Helper()
	cmd := exec.Command(sluiceBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	r := &runningSluice{cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), logs: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.logs <- sc.Text()
		}
		close(r.logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(r.base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("sluice never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait returns the exit code and every log line. It reads the logs to
// their end (the process closing stderr as it exits) before it calls Wait:
// Wait closes the pipe, and lines still unread then would be lost (os/exec:
// it is incorrect to call Wait before all reads from the pipe have
// completed). A process still running after a minute is killed.
func (r *runningSluice) wait(t *testing.T) (int, string) {
	t.Helper()
	kill := time.AfterFunc(time.Minute, func() { _ = r.cmd.Process.Kill() })
	defer kill.Stop()
	var all []string
	for l := range r.logs {
		all = append(all, l)
	}
	err := r.cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, strings.Join(all, "\n")
}

// openStream starts a streamed completion and returns its body after the
// first event.
func openStream(t *testing.T, base string) *bufio.Reader {
	t.Helper()
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data:") {
		t.Fatalf("first event: %q %v", line, err)
	}
	return br
}

// terminateStreaming runs the binary with settings in front of one pool
// on a test upstream made with opts, opens a streamed completion through
// it and sends SIGTERM while the stream runs. It returns the process and
// the stream's body after its first event; the upstream is closed when
// the test ends.
func terminateStreaming(t *testing.T, opts proxytest.Options, settings string) (*runningSluice, *bufio.Reader) {
	t.Helper()
	up := proxytest.NewServer(opts)
	t.Cleanup(up.Close)
	s := startSluice(t, settings+"upstreams: [{name: a, endpoints: ['"+up.URL+"']}]\n")
	stream := openStream(t, s.base)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return s, stream
}

// TestDrainExitCodeZero: SIGTERM with drain_delay: /ready answers 503 at
// once while the listener still serves (with Connection: close), the
// running stream finishes, and the process exits 0.
func TestDrainExitCodeZero(t *testing.T) {
	// drain_delay only has to outlast a few loopback requests; 3s is
	// generous on a starved machine.
	s, stream := terminateStreaming(t, proxytest.Options{Tokens: 20, TokenDelay: 50 * time.Millisecond},
		"drain_delay: 3s\nshutdown_timeout: 60s\n")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(s.base + "/ready")
		if err != nil {
			t.Fatalf("/ready during drain_delay: %v (want 503, not a refused connection)", err)
		}
		resp.Body.Close()
		if resp.StatusCode == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/ready never answered 503 after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := c.Post(s.base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatalf("request during drain_delay: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close || !strings.Contains(string(body), "chat.completion") {
		t.Fatalf("request during drain_delay: %d, Connection: close %v, %s", resp.StatusCode, resp.Close, body)
	}
	rest, err := io.ReadAll(stream)
	if err != nil || !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("the running stream was cut: %v %q", err, rest)
	}
	code, logs := s.wait(t)
	if code != 0 {
		t.Fatalf("exit code %d after a complete drain, want 0\n%s", code, logs)
	}
}

// TestDrainExitCodeOneWhenCut: a stream still running when
// shutdown_timeout passes is cut, the count is logged, and the process
// exits 1 (issue 9: it exited 0).
func TestDrainExitCodeOneWhenCut(t *testing.T) {
	s, stream := terminateStreaming(t, proxytest.Options{Tokens: 100000, TokenDelay: 20 * time.Millisecond},
		"drain_delay: 100ms\nshutdown_timeout: 300ms\n")
	code, logs := s.wait(t)
	if code != 1 {
		t.Fatalf("exit code %d with a stream cut by shutdown_timeout, want 1\n%s", code, logs)
	}
	if !strings.Contains(logs, `"requests_cut":1`) {
		t.Fatalf("the cut requests are not logged:\n%s", logs)
	}
	if _, err := io.ReadAll(stream); err == nil {
		t.Fatal("the cut stream ended cleanly for the client")
	}
}
