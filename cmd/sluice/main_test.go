package main

import (
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// runCLI runs the command in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	code := run(args, stdout, stderr)
	stdout.Close()
	stderr.Close()
	o, _ := os.ReadFile(stdout.Name())
	e, _ := os.ReadFile(stderr.Name())
	return code, string(o), string(e)
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidate(t *testing.T) {
	good := writeConfig(t, "upstreams: [{name: a, endpoints: ['http://127.0.0.1:9']}]\n")
	if code, out, errOut := runCLI(t, "-config", good, "-validate"); code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("valid config: exit %d, %q %q", code, out, errOut)
	}
	tests := []struct {
		name  string
		yaml  string
		args  []string
		field string
	}{
		{"bad port", "port: 70000\nupstreams: [{name: a, endpoints: ['http://h']}]\n", nil, "port"},
		{"unknown key", "prot: 1\n", nil, "prot"},
		{"unknown upstream", "upstreams: [{name: a, endpoints: ['http://h']}]\nroutes: [{upstream: b}]\n", nil, "routes[0].upstream"},
		{"no upstream", "port: 1\n", nil, "upstreams"},
		{"flag override", "upstreams: [{name: a, endpoints: ['http://h']}]\n", []string{"-max-concurrent-requests", "-1"}, "max_concurrent_requests"},
		{"missing plugin", "upstreams: [{name: a, endpoints: ['http://h']}]\nplugins: [{name: authz, path: nowhere.wasm}]\n", nil, "authz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-config", writeConfig(t, tc.yaml), "-validate"}, tc.args...)
			code, _, errOut := runCLI(t, args...)
			if code != 2 || !strings.Contains(errOut, tc.field) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %q", code, errOut, tc.field)
			}
		})
	}
	if code, _, errOut := runCLI(t, "-config", "/does/not/exist.yaml", "-validate"); code != 2 || !strings.Contains(errOut, "exist.yaml") {
		t.Fatalf("missing file: exit %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "-no-such-flag"); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	path := writeConfig(t, "port: 1000\nmax_concurrent_requests: 5\nupstreams: [{name: a, endpoints: ['http://h']}]\n")
	o, fs, err := parseFlags([]string{"-config", path, "-port", "2000", "-upstream", "http://x:1", "-upstream", "http://y:2", "-timeout", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg, err := buildConfig(o, set)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 2000 || cfg.MaxConcurrentRequests != 5 || time.Duration(cfg.Timeout) != 5*time.Second {
		t.Fatalf("config %+v", cfg)
	}
	if len(cfg.Upstreams) != 1 || cfg.Upstreams[0].Name != "default" || len(cfg.Upstreams[0].Endpoints) != 2 {
		t.Fatalf("upstreams %+v", cfg.Upstreams)
	}
}

// TestBinaryDemoAndSignal builds the binary, runs it with -demo, proxies a
// request to the embedded upstream, and checks SIGTERM drains and exits 0.
func TestBinaryDemoAndSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	port := freePort(t)
	s := startSluiceArgs(t, port, "-demo", "-hostname", "127.0.0.1", "-port", strconv.Itoa(port), "-log-format", "json")
	resp, err := http.Post(s.base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"demo","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "chat.completion") {
		t.Fatalf("demo completion: %d %q", resp.StatusCode, body)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, text := s.wait(t)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, text)
	}
	for _, want := range []string{`"msg":"access"`, `"msg":"sluice: draining"`, `"msg":"sluice: stopped"`} {
		if !strings.Contains(text, want) {
			t.Errorf("logs lack %s:\n%s", want, text)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestPprofListener(t *testing.T) {
	logger := newLogger(proxy.LogConfig{}, io.Discard)
	if err := startPprof("127.0.0.1:0", logger); err != nil {
		t.Fatal(err)
	}
	if err := startPprof("not an address", logger); err == nil {
		t.Fatal("a bad pprof address was accepted")
	}
}
