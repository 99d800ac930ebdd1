package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestPluginCostBody: the pieces wrk's script joins make an 8 KiB chat
// body of valid JSON whose system prompt and question carry the numbers,
// and none can end a long-bracket literal early.
func TestPluginCostBody(t *testing.T) {
	b := pluginCostBody
	b[1], b[3] = "00000003", "00000007"
	body := strings.Join(b[:], "")
	var req struct {
		Model    string
		Messages []struct{ Role, Content string }
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil || len(req.Messages) != 2 {
		t.Fatalf("%v, %d messages", err, len(req.Messages))
	}
	if n := len(body); n < 8000 || n > 8300 {
		t.Errorf("%d bytes, want about 8 KiB", n)
	}
	if !strings.HasPrefix(req.Messages[0].Content, "Conversation 00000003. ") || req.Messages[1].Content != "q00000007" {
		t.Errorf("messages %q… and %q", req.Messages[0].Content[:30], req.Messages[1].Content)
	}
	for i, p := range pluginCostBody {
		if strings.Contains(p, "]=]") {
			t.Errorf("piece %d holds ]=]", i)
		}
	}
	if lua := pluginCostLua(); !strings.Contains(lua, pluginCostBody[2]) || !strings.Contains(lua, `wrk.method = "POST"`) {
		t.Error("the script does not carry the body's pieces")
	}
}

// TestPluginCostScript runs the real wrk with the script against a server
// that checks every request: a POST to /v1/chat/completions whose body is
// pluginCostBody for its number, in pairs of one conversation. A script
// wrk cannot load is an error, not a run of GETs.
func TestPluginCostScript(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (apt-get install wrk): skipping the live run")
	}
	var mu sync.Mutex
	var bad []string
	seen, next := 0, -1 // requests seen; the number the next must carry
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		// wrk builds one request before the run, so the first sent may
		// carry 1: take the numbering from it.
		var n int
		if i := strings.LastIndex(string(body), `"q`); i >= 0 {
			fmt.Sscanf(string(body[i+2:]), "%08d", &n)
		}
		if next < 0 {
			next = n
		}
		b := pluginCostBody
		b[1], b[3] = fmt.Sprintf("%08d", next/2), fmt.Sprintf("%08d", next)
		if r.Method != "POST" || r.URL.Path != "/v1/chat/completions" || string(body) != strings.Join(b[:], "") {
			bad = append(bad, fmt.Sprintf("request %d: %s %s, %d bytes, numbered %d, want %d", seen, r.Method, r.URL.Path, len(body), n, next))
		}
		seen++
		next++
	}))
	defer srv.Close()
	dir := t.TempDir()
	script := filepath.Join(dir, "pairs.lua")
	if err := os.WriteFile(script, []byte(pluginCostLua()), 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, err := runWrk(context.Background(), nil, 1, time.Second, srv.URL+"/", "-s", script)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if r.Requests == 0 || seen == 0 || len(bad) > 0 {
		t.Fatalf("%d requests, %d seen; wrong: %q", r.Requests, seen, bad[:min(len(bad), 3)])
	}
	broken := filepath.Join(dir, "broken.lua")
	if err := os.WriteFile(broken, []byte("local x = 'unfinished\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runWrk(context.Background(), nil, 1, time.Second, srv.URL+"/", "-s", broken); err == nil || !strings.Contains(err.Error(), "unfinished string") {
		t.Fatalf("a script wrk cannot load: %v, want its error", err)
	}
}

func TestPluginCostOf(t *testing.T) {
	before := pluginCostSnapshot{pluginSeconds: 1, requests: 100, ticks: 50}
	after := pluginCostSnapshot{pluginSeconds: 1.5, requests: 10100, ticks: 250}
	n, plugin, sluice, busy := pluginCostOf(before, after, 2*time.Second, 100)
	if n != 10000 || math.Abs(plugin-50) > 1e-9 || math.Abs(sluice-200) > 1e-9 || math.Abs(busy-1) > 1e-9 {
		t.Fatalf("%d requests, plugin %v µs, sluice %v µs, busy %v; want 10000, 50, 200, 1", n, plugin, sluice, busy)
	}
	if n, plugin, _, _ := pluginCostOf(before, before, time.Second, 100); n != 0 || !math.IsNaN(plugin) {
		t.Fatalf("no request: %d, %v", n, plugin)
	}
}

func TestPluginCostConfigs(t *testing.T) {
	y, err := pluginCostYAML(18080, []int{18081, 18082}, pluginCostCases[1], "/x/headers.wasm", "/x/cache")
	if err != nil {
		t.Fatal(err)
	}
	var cfg sluiceConfig
	if err := yaml.Unmarshal(y, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Upstreams) != 1 || len(cfg.Upstreams[0].Endpoints) != 2 || cfg.Upstreams[0].Endpoints[1] != "http://127.0.0.1:18082" ||
		len(cfg.Plugins) != 1 || cfg.Plugins[0].Path != "/x/headers.wasm" || cfg.Plugins[0].Config == nil || cfg.Port != 18080 {
		t.Fatalf("config %+v", cfg)
	}
	if y, err = pluginCostYAML(18080, []int{18081}, pluginCostCase{}, "", "/x/cache"); err != nil || strings.Contains(string(y), "plugins") {
		t.Fatalf("without a plugin: %v\n%s", err, y)
	}
	conf := pluginCostNginx("/tmp/d", []int{18081, 18082})
	if strings.Count(conf, "listen 127.0.0.1:") != 2 || strings.Count(conf, "{") != strings.Count(conf, "}") {
		t.Fatalf("nginx.conf:\n%s", conf)
	}
	md := pluginCostMarkdown([]pluginCostRow{{Plugin: "cacheaware", Conns: 8, ReqPerSec: 7000, PluginUs: 42.25, SluiceUs: 140, Busy: 0.98}},
		time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC), "go run ./benchmarks -plugin-cost", "abc", "layout", 5*time.Second)
	if !strings.Contains(md, "| cacheaware | 8 | 7000 | 42.2 | 140.0 | 98 % | 0 |") ||
		!strings.Contains(pluginCostMarkdown([]pluginCostRow{{Conns: 1}}, time.Now(), "", "", "", time.Second), "| none | 1 | 0 | — |") {
		t.Fatalf("report:\n%s", md)
	}
}

// An -out that cannot be made fails the plugin-cost benchmark before its
// runs (it once failed after them, the report only on stdout).
func TestPluginCostOutFailsFirst(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	procs := newProcSet()
	defer procs.StopAll()
	start := time.Now()
	err := runPluginCost(context.Background(), options{repo: "..", out: filepath.Join(file, "sub")}, procs)
	if err == nil || !strings.Contains(err.Error(), "-out") {
		t.Fatalf("error %v, want one naming -out", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v: the runs went first", d)
	}
}
