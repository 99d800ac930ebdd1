package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestSluiceYAMLLoads checks the generated configuration against Sluice's
// own loader, so a renamed key fails here rather than in a benchmark run.
func TestSluiceYAMLLoads(t *testing.T) {
	plugins := []sluicePlugin{
		{Name: "bench-go-1", Path: "/tmp/h.wasm", Config: goHeadersConfig(0)},
		{Name: "bench-c-1", Path: "/tmp/c.wasm", Config: "headers-only"},
	}
	b, err := sluiceYAML(18081, 18080, 4096, plugins, "/tmp/cache")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := proxy.ParseConfig(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if cfg.Hostname != "127.0.0.1" || cfg.Port != 18081 || cfg.MaxConcurrentRequests != 4096 || cfg.MaxBatchSize != 4096 {
		t.Fatalf("config %+v", cfg)
	}
	if len(cfg.Upstreams) != 1 || cfg.Upstreams[0].Endpoints[0] != "http://127.0.0.1:18080" {
		t.Fatalf("upstreams %+v", cfg.Upstreams)
	}
	if cfg.Log.Access == nil || *cfg.Log.Access || cfg.Log.Level != "warn" {
		t.Fatalf("log %+v", cfg.Log)
	}
	if got := string(cfg.Plugins[0].Config); got != `{"request":{"add":{"x-bench":"1"}}}` {
		t.Fatalf("Go plugin config %s", got)
	}
	if got := string(cfg.Plugins[1].Config); got != "headers-only" {
		t.Fatalf("C plugin config %q", got)
	}
	if cfg.PluginCacheDir != "/tmp/cache" {
		t.Fatalf("plugin cache %q", cfg.PluginCacheDir)
	}
}

func TestNginxConfValid(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed (apt-get install nginx): skipping nginx -t")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, 28085, 28080, 256, true)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nginx", "-t", "-e", "stderr", "-p", dir, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestHAProxyConfValid(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed (apt-get install haproxy): skipping haproxy -c")
	}
	conf := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(haproxyConf(28086, 28080, 2048, true)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

func TestCPULayout(t *testing.T) {
	p, l, cpu, d := cpuLayout([]int{2, 5, 7}, true)
	if strings.Join(p, " ") != "taskset -c 5" || strings.Join(l, " ") != "taskset -c 2" || cpu != 5 || !strings.Contains(d, "alone on CPU 5") {
		t.Fatalf("layout %q %q %d %q", p, l, cpu, d)
	}
	if p, l, cpu, d := cpuLayout([]int{0}, true); p != nil || l != nil || cpu != -1 || !strings.Contains(d, "only 1 CPU") {
		t.Fatalf("one CPU: %q %q %d %q", p, l, cpu, d)
	}
	if p, _, _, d := cpuLayout([]int{0, 1}, false); p != nil || !strings.Contains(d, "taskset missing") {
		t.Fatalf("no taskset: %q %q", p, d)
	}
}

func TestNginxUpstreamConfValid(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed (apt-get install nginx): skipping nginx -t")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxUpstreamConf(dir, 28080, 28093, 256)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nginx", "-t", "-e", "stderr", "-p", dir, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// TestProxiesEndToEnd starts the upstream helper, nginx and HAProxy,
// measures each with one second of wrk, and checks every process is gone
// after StopAll.
func TestProxiesEndToEnd(t *testing.T) {
	for _, tool := range []string{"wrk", "nginx", "haproxy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install wrk nginx haproxy): skipping the end-to-end run", tool)
		}
	}
	const base = 28080
	procs := newProcSet()
	defer procs.StopAll()
	e := &env{tmp: t.TempDir(), procs: procs, upstream: base, maxConns: 8}
	up, err := startUpstream(e, upstreamNginx, base, base+portVerify)
	if err != nil {
		t.Fatal(err)
	}
	cs := []*contender{
		{Name: kindDirect, Kind: kindDirect, Port: base, proc: up},
		{Name: kindNginx, Kind: kindNginx, Port: base + portNginx},
		{Name: kindHAProxy, Kind: kindHAProxy, Port: base + portHAProxy},
	}
	var pids []int
	for _, c := range cs {
		if err := e.start(c); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, groupMembers(c.pid())...)
		s, err := e.measure(context.Background(), c, 8, time.Second, clockTicks())
		if err != nil {
			t.Fatal(err)
		}
		if s.Wrk.RPS <= 0 || s.Wrk.Errors() != 0 || s.CPUMicros <= 0 || s.CPUPerReq <= 0 || s.ProcBusy <= 0 || s.ProcBusy > 1.5 {
			t.Fatalf("%s: implausible sample %+v", c.Name, s)
		}
	}
	if len(pids) < 5 { // nginx upstream master and worker, nginx master and worker, haproxy
		t.Fatalf("only %d processes found: %v", len(pids), pids)
	}
	// A plugin contender must be caught when its plugins did not run.
	bad := &contender{Name: "sluice-go", Kind: kindSluice, Port: base + portNginx, Plugins: make([]sluicePlugin, 1)}
	if err := e.verify(bad); err == nil || !strings.Contains(err.Error(), "plugins running") {
		t.Fatalf("verify of a contender without its plugin: %v", err)
	}
	procs.StopAll()
	waitGone(t, pids...)
}
