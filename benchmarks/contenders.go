package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Contender kinds.
const (
	kindDirect  = "direct"
	kindSluice  = "sluice"
	kindNginx   = "nginx"
	kindHAProxy = "haproxy"
)

// readyTimeout bounds the wait for a contender to answer.
const readyTimeout = 30 * time.Second

// contender is one server wrk is pointed at.
type contender struct {
	Name    string // CLI and table name: direct, sluice, sluice-go, nginx, …
	Kind    string
	Port    int
	Plugins []sluicePlugin // Sluice plugin chain; empty for the others
	proc    *proc          // nil until started; the upstream's for direct
	// Command and Config are the command line and configuration file
	// text it was started with, for the report (empty for direct).
	Command, Config string
}

// URL is the address wrk loads.
func (c *contender) URL() string { return "http://127.0.0.1:" + strconv.Itoa(c.Port) + "/" }

// env is what starting contenders needs; shared read-only after setup.
type env struct {
	repo      string   // module root
	tmp       string   // scratch directory, removed at exit
	procs     *procSet // owner of every child
	pinProxy  []string // taskset prefix for the proxy under test ("" = none)
	proxyCPU  int      // the CPU pinProxy pins to (meaningless when pinProxy is empty)
	pinLoad   []string // taskset prefix for wrk and the upstreams
	upstream  int      // port of the fast upstream
	maxConns  int      // largest wrk connection count (sizes pools)
	sluiceBin string   // built binary; empty when Sluice is unavailable
}

// sluicePlugin is one entry of Sluice's plugins: list.
type sluicePlugin struct {
	Name   string `yaml:"name"`
	Path   string `yaml:"path"`
	Config any    `yaml:"config,omitempty"`
}

// sluiceConfig is the YAML the harness writes for Sluice (the proxy and
// the fleet benchmarks): only the keys it needs, in the snake_case of
// proxy.Config; a key left empty is left out, for Sluice's default.
type sluiceConfig struct {
	Hostname              string           `yaml:"hostname"`
	Port                  int              `yaml:"port"`
	MaxConcurrentRequests int              `yaml:"max_concurrent_requests"`
	MaxBatchSize          int              `yaml:"max_batch_size"`
	Timeout               string           `yaml:"timeout,omitempty"`
	Upstreams             []sluiceUpstream `yaml:"upstreams"`
	Log                   sluiceLog        `yaml:"log"`
	PluginCacheDir        string           `yaml:"plugin_cache_dir,omitempty"`
	Plugins               []sluicePlugin   `yaml:"plugins,omitempty"`
}

type sluiceUpstream struct {
	Name           string   `yaml:"name"`
	Endpoints      []string `yaml:"endpoints"`
	LBPolicy       string   `yaml:"lb_policy,omitempty"`
	MetricsPath    string   `yaml:"metrics_path,omitempty"`
	ScrapeInterval string   `yaml:"scrape_interval,omitempty"`
}

type sluiceLog struct {
	Access bool   `yaml:"access"`
	Level  string `yaml:"level"`
}

// sluiceYAML renders the configuration of a Sluice contender listening on
// port and forwarding to upstreamPort. slots sizes both
// max_concurrent_requests and max_batch_size (the per-endpoint cap, 32 by
// default) so that neither refuses load the other proxies would carry.
func sluiceYAML(port, upstreamPort, slots int, plugins []sluicePlugin, cacheDir string) ([]byte, error) {
	cfg := sluiceConfig{
		Hostname:              "127.0.0.1",
		Port:                  port,
		MaxConcurrentRequests: slots,
		MaxBatchSize:          slots,
		Upstreams:             []sluiceUpstream{{Name: "default", Endpoints: []string{"http://127.0.0.1:" + strconv.Itoa(upstreamPort)}}},
		Log:                   sluiceLog{Access: false, Level: "warn"},
		Plugins:               plugins,
	}
	if len(plugins) > 0 {
		cfg.PluginCacheDir = cacheDir
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("benchmarks: sluice config: %w", err)
	}
	return b, nil
}

// nginxConf renders nginx.conf: one worker, no access log, an upstream
// keepalive pool as large as the largest connection count, and
// keepalive_requests raised so nginx does not close wrk's connections every
// 1000 requests (its default) while the other proxies keep them.
// worker_connections (client plus upstream sockets) is sized from
// keepalive so that it fits the inherited open-file limit. With streaming,
// responses are passed on as they arrive (proxy_buffering off), as an SSE
// deployment of nginx must be configured.
func nginxConf(dir string, port, upstreamPort, keepalive int, streaming bool) string {
	buffering := "on"
	if streaming {
		buffering = "off"
	}
	return nginxHead(dir, 4*keepalive+1024) + fmt.Sprintf(`    upstream bench {
        server 127.0.0.1:%[2]d;
        keepalive %[3]d;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:%[1]d backlog=4096;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering %[4]s;
        }
    }
}
`, port, upstreamPort, keepalive, buffering)
}

// nginxHead is the start of every nginx.conf the harness writes, up to
// and including "http {": one worker in the foreground, files under dir,
// no access log, keep-alive connections never closed for their request
// count (nginx's default closes them every 1000 requests).
func nginxHead(dir string, workerConns int) string {
	return fmt.Sprintf(`worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log stderr warn;
events {
    worker_connections %[2]d;
}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_requests 1000000;
`, dir, workerConns)
}

// haproxyConf renders haproxy.cfg: one thread, HTTP mode, server
// connections reused across client connections (http-reuse always).
// maxconn is set explicitly because HAProxy derives its open-file need
// from it and refuses to start when the limit cannot be raised that far.
// With streaming it adds `option http-no-delay`, which an SSE deployment
// needs: without it HAProxy sends a chunked body's pieces with MSG_MORE,
// and the kernel holds each event up to 200 ms (measured: TTFB 205 ms p50
// against 0.5 ms direct).
func haproxyConf(port, upstreamPort, maxconn int, streaming bool) string {
	noDelay := ""
	if streaming {
		noDelay = "\n    option http-no-delay"
	}
	return fmt.Sprintf(`global
    nbthread 1
    maxconn %d
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always%s
frontend bench
    bind 127.0.0.1:%d
    default_backend upstream
backend upstream
    server u1 127.0.0.1:%d
`, maxconn, noDelay, port, upstreamPort)
}

// start launches c (pinned to the proxy CPU), waits until it answers and
// checks that it proxies: GET / must return the upstream's body, and a
// plugin contender must have added the bench header as many times as it
// has plugins.
func (e *env) start(c *contender) error {
	var cmd *exec.Cmd
	readyURL := c.URL()
	switch c.Kind {
	case kindDirect:
		return e.verify(c)
	case kindSluice:
		if e.sluiceBin == "" {
			return fmt.Errorf("benchmarks: %s: sluice binary not built", c.Name)
		}
		b, err := sluiceYAML(c.Port, e.upstream, max(4096, 2*e.maxConns), c.Plugins, filepath.Join(e.tmp, "plugin-cache"))
		if err != nil {
			return err
		}
		path := filepath.Join(e.tmp, c.Name+".yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("benchmarks: %w", err)
		}
		cmd = pinned(e.pinProxy, e.sluiceBin, "-config", path)
		c.Config = string(b)
		readyURL = "http://127.0.0.1:" + strconv.Itoa(c.Port) + "/ready"
	case kindNginx:
		dir := filepath.Join(e.tmp, "nginx")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("benchmarks: %w", err)
		}
		conf := filepath.Join(dir, "nginx.conf")
		c.Config = nginxConf(dir, c.Port, e.upstream, e.maxConns, false)
		if err := os.WriteFile(conf, []byte(c.Config), 0o644); err != nil {
			return fmt.Errorf("benchmarks: %w", err)
		}
		cmd = pinned(e.pinProxy, "nginx", "-e", "stderr", "-p", dir, "-c", conf)
	case kindHAProxy:
		conf := filepath.Join(e.tmp, "haproxy.cfg")
		c.Config = haproxyConf(c.Port, e.upstream, 4*e.maxConns+1024, false)
		if err := os.WriteFile(conf, []byte(c.Config), 0o644); err != nil {
			return fmt.Errorf("benchmarks: %w", err)
		}
		cmd = pinned(e.pinProxy, "haproxy", "-db", "-f", conf)
	default:
		return fmt.Errorf("benchmarks: unknown contender kind %q", c.Kind)
	}
	if err := checkPort(c.Port); err != nil {
		return err
	}
	c.Command = strings.Join(cmd.Args, " ")
	p, err := e.procs.Start(c.Name, cmd)
	if err != nil {
		return err
	}
	c.proc = p
	if err := waitHTTP(readyURL, http.StatusOK, readyTimeout, p); err != nil {
		return fmt.Errorf("%w\n%s output:\n%s", err, c.Name, tail(p.Output(), 2000))
	}
	return e.verify(c)
}

// verify sends one GET verifyPath through c and checks the reply.
func (e *env) verify(c *contender) error {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(strings.TrimSuffix(c.URL(), "/") + verifyPath)
	if err != nil {
		return fmt.Errorf("benchmarks: %s: check request: %w", c.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("benchmarks: %s: check request body: %w", c.Name, err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != string(upstreamBody) {
		return fmt.Errorf("benchmarks: %s: GET / answered %s with %q, want 200 with the upstream's reply", c.Name, resp.Status, tail(string(body), 200))
	}
	seen, _ := strconv.Atoi(resp.Header.Get(benchSeenHeader))
	if seen != len(c.Plugins) {
		return fmt.Errorf("benchmarks: %s: upstream saw %d %s* headers, want %d (one per plugin): are the plugins running?",
			c.Name, seen, benchHeader, len(c.Plugins))
	}
	return nil
}

// pid is the process whose CPU time (with its descendants') is charged to
// c: the proxy, or the upstream for direct.
func (c *contender) pid() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.Pid()
}

// pinned returns the command name args... prefixed by the taskset pin.
func pinned(pin []string, name string, args ...string) *exec.Cmd {
	all := append(append(append([]string{}, pin...), name), args...)
	return exec.Command(all[0], all[1:]...)
}

// cpuLayout decides the pinning (issue 12): with two or more CPUs, wrk
// and the upstreams get the first allowed CPU and the proxy under test the
// second, alone, so that nothing but the proxy competes for its core and
// its busy share (judge) says whether it was the bottleneck. It returns
// the taskset prefixes, the proxy's CPU and a sentence for the report.
func cpuLayout(cpus []int, haveTaskset bool) (proxy, load []string, proxyCPU int, desc string) {
	switch {
	case !haveTaskset:
		return nil, nil, -1, "no pinning (taskset missing): proxies, wrk and upstream share all CPUs; the core-busy column is empty"
	case len(cpus) < 2:
		return nil, nil, -1, fmt.Sprintf("no pinning (only %d CPU available): proxies, wrk and upstream share it; the core-busy column is empty", len(cpus))
	}
	l, p := strconv.Itoa(cpus[0]), strconv.Itoa(cpus[1])
	return []string{"taskset", "-c", p}, []string{"taskset", "-c", l}, cpus[1],
		fmt.Sprintf("wrk and the upstream share CPU %s (taskset -c %s); the proxy under test runs alone on CPU %s (taskset -c %s); "+
			"Go processes size GOMAXPROCS to their affinity, so Sluice runs with GOMAXPROCS=1", l, l, p, p)
}

// describeGuests lists guest builds for the report.
func describeGuests(gs map[string]*guest) []string {
	var lines []string
	for _, lang := range []string{"go", "c", "as"} {
		g, ok := gs[lang]
		switch {
		case !ok:
		case g.Skip != "":
			lines = append(lines, fmt.Sprintf("%s plugin: skipped: %s", guestLabel[lang], g.Skip))
		default:
			lines = append(lines, fmt.Sprintf("%s plugin: `%s`", guestLabel[lang], strings.TrimSpace(g.Build)))
		}
	}
	return lines
}
