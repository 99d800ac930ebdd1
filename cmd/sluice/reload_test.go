package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// liveProxy is the command's reload path run in this process (so -race
// sees it): a config file, the live state built from it, serving on a
// loopback port. reload is what SIGHUP runs.
type liveProxy struct {
	t    *testing.T
	l    *live
	path string
	base string
	logs *testsync.LogBuffer
}

// startLive writes config (hostname and the shared plugin compilation
// cache added) and serves it.
func startLive(t *testing.T, conf string) *liveProxy {
	t.Helper()
	p := &liveProxy{t: t, path: writeConfig(t, ""), logs: &testsync.LogBuffer{}}
	p.write(conf)
	o := &options{configPath: p.path}
	flags := map[string]bool{}
	cfg, err := buildConfig(o, flags)
	var rc *config.Resolved
	if err == nil {
		rc, err = finishConfig(cfg, o, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	log := newLeveledLogger(cfg.Log, p.logs, level)
	ctx := context.Background()
	p.l = newLive(o, flags, nil, log, level, cfg.PluginCacheDir)
	if err := p.l.start(ctx, rc); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = p.l.srv.Serve(ln) }()
	p.l.srv.Router().SetReady(true)
	p.base = "http://" + ln.Addr().String()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy log:\n%s", p.logs.String())
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = p.l.srv.Shutdown(sctx)
		<-done
		p.l.close(ctx)
	})
	return p
}

// write replaces the config file.
func (p *liveProxy) write(config string) {
	p.t.Helper()
	text := "hostname: 127.0.0.1\nplugin_cache_dir: " + plugintest.CompileCacheDir() + "\nlog: {access: false}\n" + config
	if err := os.WriteFile(p.path, []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// reload rewrites the config file and reloads it.
func (p *liveProxy) reload(config string) error {
	p.t.Helper()
	p.write(config)
	return p.l.reload(context.Background())
}

// get sends a chat completion with headers hdr and returns its status,
// its x-gen header and its body.
func (p *liveProxy) post(c *http.Client, body string, hdr ...string) (int, string, string, error) {
	req, err := http.NewRequest("POST", p.base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("x-gen"), string(b), err
}

// metric returns the value of the series named exactly series on
// /metrics.
func (p *liveProxy) metric(series string) string {
	p.t.Helper()
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

const (
	plainBody  = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	streamBody = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
)

// headersPlugin is a plugins entry for the headers plugin setting x-gen
// on every response.
func headersPlugin(path, gen string) string {
	return "plugins:\n  - name: headers\n    path: " + path + "\n    instances: 1\n    config: {response: {set: {x-gen: '" + gen + "'}}}\n"
}

// TestReloadUnderLoad: ten reloads, each changing the plugin's config,
// while clients send plain and streamed requests without pause: no
// request fails, every answer went through the plugin, and after the
// last reload every answer carries its value.
func TestReloadUnderLoad(t *testing.T) {
	wasmPath := plugintest.BuildGo(t, "plugins/headers")
	up := proxytest.NewServer(proxytest.Options{Tokens: 6, TokenDelay: 2 * time.Millisecond})
	defer up.Close()
	ups := "upstreams: [{name: a, endpoints: ['" + up.URL + "']}]\n"
	p := startLive(t, ups+headersPlugin(wasmPath, "0"))

	const clients, reloads = 4, 10
	load := testsync.StartLoad(clients, func(i int) error {
		body := plainBody
		if i%2 == 1 {
			body = streamBody
		}
		status, gen, b, err := p.post(http.DefaultClient, body)
		if err != nil || status != 200 || gen == "" || (i%2 == 1) != strings.Contains(b, "[DONE]") {
			t.Errorf("request: %d x-gen %q %v %.200q", status, gen, err, b)
			return errors.New("failed")
		}
		return nil
	})
	for i := 1; i <= reloads; i++ {
		load.Await(t, 30*time.Second, clients)
		if err := p.reload(ups + headersPlugin(wasmPath, strconv.Itoa(i))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	load.Await(t, 30*time.Second, clients)
	if sent, failed := load.Stop(); failed != 0 {
		t.Fatalf("%d of %d requests failed across %d reloads", failed, sent, reloads)
	}
	if _, gen, _, _ := p.post(http.DefaultClient, plainBody); gen != strconv.Itoa(reloads) {
		t.Fatalf("after the last reload x-gen is %q, want %d", gen, reloads)
	}
	if got := p.metric(`sluice_config_reloads_total{result="ok"}`); got != strconv.Itoa(reloads) {
		t.Fatalf(`sluice_config_reloads_total{result="ok"} = %q, want %d`, got, reloads)
	}
	// Every replaced generation's plugin is closed once its requests end:
	// only the current one stays loaded.
	testsync.WaitFor(t, 10*time.Second, "the replaced plugins closed", func() bool {
		p.l.plugins.mu.Lock()
		defer p.l.plugins.mu.Unlock()
		return len(p.l.plugins.byKey) == 1
	})
}

// TestReloadRefusedKeepsRunning: a config that fails validation, a plugin
// that fails to load and a port change are each refused with an error
// naming what is wrong, counted, and the running config (plugin
// included) keeps serving.
func TestReloadRefusedKeepsRunning(t *testing.T) {
	wasmPath := plugintest.BuildGo(t, "plugins/headers")
	up := proxytest.NewServer(proxytest.Options{})
	defer up.Close()
	ups := "upstreams: [{name: a, endpoints: ['" + up.URL + "']}]\n"
	p := startLive(t, ups+headersPlugin(wasmPath, "old"))
	notWasm := writeConfig(t, "not a wasm module")
	for i, tc := range []struct{ config, want string }{
		{"max_concurrent_requests: -1\n" + ups + headersPlugin(wasmPath, "new"), "max_concurrent_requests"},
		{"upstreams: [{name: a, endpoints: ['" + up.URL + "']\n", "yaml"},
		{ups + headersPlugin(notWasm, "new"), `plugin "headers"`},
		{ups + "plugins: [{name: headers, path: " + wasmPath + ", config: {response: {set: {'x y': z}}}}]\n", `plugin "headers"`},
		{"port: 9999\n" + ups + headersPlugin(wasmPath, "new"), "port"},
	} {
		err := p.reload(tc.config)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("case %d: reload: %v, want an error naming %s", i, err, tc.want)
		}
		if !strings.Contains(p.logs.String(), "reload failed") {
			t.Fatalf("case %d: the refused reload is not logged:\n%s", i, p.logs.String())
		}
		if status, gen, _, err := p.post(http.DefaultClient, plainBody); status != 200 || gen != "old" {
			t.Fatalf("case %d: after a refused reload: %d x-gen %q %v, want the running plugin's answer", i, status, gen, err)
		}
		if got := p.metric(`sluice_config_reloads_total{result="error"}`); got != strconv.Itoa(i+1) {
			t.Fatalf(`case %d: sluice_config_reloads_total{result="error"} = %q`, i, got)
		}
		if got := p.metric("sluice_config_last_reload_successful"); got != "0" {
			t.Fatalf("case %d: sluice_config_last_reload_successful = %q, want 0", i, got)
		}
	}
	p.l.plugins.mu.Lock()
	loaded := len(p.l.plugins.byKey)
	p.l.plugins.mu.Unlock()
	if loaded != 1 {
		t.Fatalf("%d plugins loaded after refused reloads, want the running one", loaded)
	}
	if err := p.reload(ups + headersPlugin(wasmPath, "new")); err != nil {
		t.Fatal(err)
	}
	if _, gen, _, _ := p.post(http.DefaultClient, plainBody); gen != "new" {
		t.Fatalf("a good reload after refused ones: x-gen %q", gen)
	}
	if got := p.metric("sluice_config_last_reload_successful"); got != "1" {
		t.Fatalf("sluice_config_last_reload_successful = %q, want 1", got)
	}
}

// TestReloadKeepsSharedData: the ratelimit plugin keeps its buckets in
// shared data. A client that used its one request per minute stays
// limited across a reload that leaves the plugin unchanged (the plugin is
// reused), and across one that changes its config under the same vm_id
// (a new plugin, the same shared data, as Envoy keeps it per vm_id); a
// new vm_id starts with fresh data.
//
// The bucket refills in 60s; the reloads take seconds, so the test relies
// on that bound only, not on speed.
func TestReloadKeepsSharedData(t *testing.T) {
	wasmPath := plugintest.BuildGo(t, "plugins/ratelimit")
	up := proxytest.NewServer(proxytest.Options{})
	defer up.Close()
	ups := "upstreams: [{name: a, endpoints: ['" + up.URL + "']}]\n"
	limit := func(vmID string, extra string) string {
		return ups + "plugins:\n  - name: ratelimit\n    path: " + wasmPath + "\n    vm_id: " + vmID +
			"\n    instances: 1\n    config: {requests_per_minute: 1" + extra + "}\n"
	}
	p := startLive(t, limit("rl", ""))
	status := func() int {
		t.Helper()
		s, _, _, err := p.post(http.DefaultClient, plainBody, "x-sluice-tenant", "acme")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := status(); s != 200 {
		t.Fatalf("first request: %d", s)
	}
	if s := status(); s != 429 {
		t.Fatalf("second request in the minute: %d, want 429", s)
	}
	check := func(what, config string, want int) {
		t.Helper()
		if err := p.reload(config); err != nil {
			t.Fatal(err)
		}
		if s := status(); s != want {
			t.Fatalf("after %s: %d, want %d", what, s, want)
		}
	}
	check("a reload with the plugin unchanged", "timeout: 59s\n"+limit("rl", ""), 429)
	if !strings.Contains(p.logs.String(), `plugins_reused=1`) {
		t.Fatalf("the unchanged plugin was not reused:\n%s", p.logs.String())
	}
	check("a reload changing the plugin's config, same vm_id", limit("rl", ", default_token_estimate: 100"), 429)
	check("a reload with a new vm_id", limit("rl2", ", default_token_estimate: 100"), 200)
}

// TestSIGHUPReloads runs the binary: SIGHUP applies a changed
// max_concurrent_requests, refuses a port change with a log line naming
// port (the process keeps serving on its port), and SIGTERM still drains
// with exit code 0.
func TestSIGHUPReloads(t *testing.T) {
	up := proxytest.NewServer(proxytest.Options{})
	defer up.Close()
	port := freePort(t)
	config := func(p, max int, pool string) string {
		return "hostname: 127.0.0.1\nport: " + strconv.Itoa(p) + "\nlog: {format: json}\nmax_concurrent_requests: " +
			strconv.Itoa(max) + "\nupstreams: [{name: " + pool + ", endpoints: ['" + up.URL + "']}]\n"
	}
	path := writeConfig(t, config(port, 5, "a"))
	s := startSluiceArgs(t, port, "-config", path)
	hup := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	maxSlots := func() int64 {
		t.Helper()
		resp, err := http.Get(s.base + "/health")
		if err != nil {
			t.Fatalf("/health: %v", err)
		}
		defer resp.Body.Close()
		var h struct {
			Max int64 `json:"max_concurrent_requests"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return h.Max
	}
	// logLine waits for a log line containing every one of want.
	logLine := func(want ...string) string {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-s.logs:
				if !ok {
					t.Fatalf("sluice exited before logging %q", want)
				}
				all := true
				for _, w := range want {
					all = all && strings.Contains(l, w)
				}
				if all {
					return l
				}
			case <-timeout:
				t.Fatalf("no log line with %q", want)
			}
		}
	}

	post := func() {
		t.Helper()
		req, _ := http.NewRequest("POST", s.base+"/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if resp, b := plugintest.RoundTrip(t, http.DefaultClient, req); resp.StatusCode != 200 {
			t.Fatalf("request: %d %s", resp.StatusCode, b)
		}
	}
	post()
	post()
	hup(config(port, 7, "b")) // pool a is removed
	logLine(`"msg":"sluice: reloaded"`)
	if got := maxSlots(); got != 7 {
		t.Fatalf("max_concurrent_requests after SIGHUP: %d, want 7", got)
	}
	post()
	// Counters and histograms carry over the reload; pool a's counters
	// stay, frozen; the scrape is promtool-clean (no series twice).
	scrape := get(t, s.base+"/metrics")
	for _, want := range []string{
		`sluice_responses_total{code="200"} 3`, `sluice_request_duration_seconds_count 3`,
		`sluice_upstream_requests_total{upstream="a",code="200"} 2`,
		`sluice_upstream_requests_total{upstream="b",code="200"} 1`,
	} {
		if !strings.Contains(scrape, "\n"+want+"\n") {
			t.Errorf("scrape after the reload lacks %q", want)
		}
	}
	promtoolCheck(t, scrape)
	hup(config(port+1, 9, "b"))
	l := logLine(`"msg":"sluice: reload failed; the running configuration stays"`)
	if !strings.Contains(l, "port (running") {
		t.Fatalf("the refused reload does not name port: %s", l)
	}
	if got := maxSlots(); got != 7 {
		t.Fatalf("a refused reload changed max_concurrent_requests to %d", got)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, logs := s.wait(t); code != 0 {
		t.Fatalf("exit code %d, want 0\n%s", code, logs)
	}
}

// TestReloadersHook: the reloaders run on every reload, after the config
// is valid and before the swap, with the new config; an error from one
// refuses the reload like a bad config.
func TestReloadersHook(t *testing.T) {
	up := proxytest.NewServer(proxytest.Options{})
	defer up.Close()
	ups := "upstreams: [{name: a, endpoints: ['" + up.URL + "']}]\n"
	p := startLive(t, "max_concurrent_requests: 5\n"+ups)
	var seen []int
	var fail error
	p.l.reloaders = append(p.l.reloaders, func(cfg *proxy.Config) error {
		seen = append(seen, cfg.MaxConcurrentRequests)
		return fail
	})
	fail = errors.New("tls: cert.pem: no such file")
	if err := p.reload("max_concurrent_requests: 6\n" + ups); err == nil || !strings.Contains(err.Error(), "cert.pem") {
		t.Fatalf("a failing reloader: %v, want its error", err)
	}
	if got := p.l.srv.Config().MaxConcurrentRequests; got != 5 {
		t.Fatalf("a failing reloader let the reload through: max %d", got)
	}
	fail = nil
	if err := p.reload("max_concurrent_requests: 7\n" + ups); err != nil {
		t.Fatal(err)
	}
	if got := p.l.srv.Config().MaxConcurrentRequests; got != 7 || len(seen) != 2 || seen[0] != 6 || seen[1] != 7 {
		t.Fatalf("max %d, reloaders saw %v; want 7 and [6 7]", got, seen)
	}
}
