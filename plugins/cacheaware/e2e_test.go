//go:build !wasip1

package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

const pluginPkg = "plugins/cacheaware"

// chatTurn is a chat request: a long per-conversation system prompt (so
// that the shared prefix passes cache_threshold) and a user message.
func chatTurn(conv int, turn string) string {
	sys := strings.Repeat(fmt.Sprintf("You are assistant number %d of the test fleet. ", conv), 20)
	return `{"model":"m","messages":[{"role":"system","content":"` + sys + `"},{"role":"user","content":"` + turn + `"}]}`
}

// startFleet runs n endpoints named e0… in one pool whose engine
// metrics are scraped every 20ms, behind Sluice with the plugin loaded
// from a YAML plugin entry with no config (and two instances, so the
// index must be shared to work).
func startFleet(t *testing.T, n int) (*pluginenv.Env, map[string]*proxytest.Server) {
	t.Helper()
	var urls []string
	ups := map[string]*proxytest.Server{}
	for i := range n {
		name := "e" + strconv.Itoa(i)
		up := proxytest.NewServer(proxytest.Options{Name: name})
		t.Cleanup(up.Close)
		if err := up.SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM}); err != nil {
			t.Fatal(err)
		}
		ups[name] = up
		urls = append(urls, up.URL)
	}
	cfg := proxy.NewConfig().WithUpstream("llm", urls...)
	cfg.Upstreams[0].MetricsPath = "/metrics"
	cfg.Upstreams[0].ScrapeInterval = proxy.Duration(20 * time.Millisecond)
	var pc proxy.PluginConfig
	// Counters flushed every 20 ms, not every second: waitMetric's
	// waits are the tests' longest.
	if err := yaml.Unmarshal([]byte("name: cacheaware\npath: "+pluginenv.PluginPath(t, pluginPkg)+"\ninstances: 2\ncall_timeout: 2s\nconfig: {metrics_flush_period: 20ms}\n"), &pc); err != nil {
		t.Fatal(err)
	}
	return pluginenv.Start(t, cfg, pc), ups
}

// waitMetric waits for the plugin series sluice_wasm_cacheaware_<series>
// to reach want ("": any value but 0). Instances flush their counters
// every metrics_flush_period (20 ms in these tests) and at the
// plugin's end; the bound is 5 s, for a loaded machine.
func waitMetric(t *testing.T, e *pluginenv.Env, series, want string) {
	t.Helper()
	prefix := "sluice_wasm_cacheaware_" + series + " "
	var line string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		line = e.Metric(prefix)
		v := strings.TrimPrefix(line, prefix)
		if line != "" && (v == want || want == "" && v != "0") {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if want == "" {
		want = "not 0"
	}
	t.Errorf("metric %s: got line %q within 5s, want %s", series, line, want)
}

func send(t *testing.T, e *pluginenv.Env, body string) string {
	t.Helper()
	resp, out := e.Do(t, "POST", "/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s\nlogs: %s", resp.StatusCode, out, e.Logs)
	}
	return resp.Header.Get("x-upstream-name")
}

// TestEndToEndAffinity: every turn of a conversation goes where its first
// turn went, across the plugin's two instances; unrelated conversations
// spread over the fleet (the least-loaded pick breaks ties at random).
func TestEndToEndAffinity(t *testing.T) {
	e, _ := startFleet(t, 4)
	const convs, turns = 12, 4
	home := map[int]string{}
	used := map[string]bool{}
	for c := range convs {
		home[c] = send(t, e, chatTurn(c, "first question"))
		used[home[c]] = true
	}
	for turn := range turns {
		for c := range convs {
			if got := send(t, e, chatTurn(c, fmt.Sprint("follow-up ", turn))); got != home[c] {
				t.Fatalf("conversation %d turn %d went to %s, its prefix is on %s\nlogs: %s", c, turn, got, home[c], e.Logs)
			}
		}
	}
	if strings.Contains(e.Logs.String(), "does not bound shared data") {
		t.Errorf("the host refused the index's shared-data policy:\n%s", e.Logs)
	}
	if strings.Contains(e.Logs.String(), "not in the shape this plugin reads fast") {
		t.Errorf("the host's upstream_stats missed the one-pass reader:\n%s", e.Logs)
	}
	if len(used) < 2 {
		t.Errorf("%d unrelated conversations all went to %v", convs, used)
	}
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="prefix"}`, fmt.Sprint(convs*turns))
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="least_load"}`, fmt.Sprint(convs))
	waitMetric(t, e, `matched_blocks_total{plugin="cacheaware"}`, "")
}

// TestEndToEndOverload: when the engine holding a conversation's prefix
// reports a deep queue, the conversation moves to the least-loaded
// endpoint; when the queue drains, new turns are sticky again.
func TestEndToEndOverload(t *testing.T) {
	e, ups := startFleet(t, 3)
	home := send(t, e, chatTurn(1, "first"))
	if got := send(t, e, chatTurn(1, "second")); got != home {
		t.Fatalf("second turn went to %s, first to %s", got, home)
	}
	if err := ups[home].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 200}); err != nil {
		t.Fatal(err)
	}
	// The scrape lands within a few 20ms intervals; allow 5s under load.
	deadline := time.Now().Add(5 * time.Second)
	var moved string
	for i := 0; ; i++ {
		if got := send(t, e, chatTurn(1, fmt.Sprint("turn ", i))); got != home {
			moved = got
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests stay on the overloaded %s\nlogs: %s", home, e.Logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="overload"}`, "")
	// The prefix now lives on the new endpoint: it stays there.
	for i := range 5 {
		if got := send(t, e, chatTurn(1, fmt.Sprint("after ", i))); got != moved {
			t.Fatalf("after the move, turn %d went to %s, want %s", i, got, moved)
		}
	}
}

func TestEndToEndBadConfig(t *testing.T) {
	pluginenv.LoadFails(t, pluginPkg, `{"balance_rel_threshold": 0.5}`,
		"cacheaware: balance_rel_threshold: 0.5 is not in 1..")
}

// TestEndToEndSession: with session_header, unrelated prompts of one
// session go to one endpoint; the user field works the same way with
// session_from_user.
func TestEndToEndSession(t *testing.T) {
	cfg := proxy.NewConfig().WithUpstream("llm", endpointURLs(t, 4)...)
	e := pluginenv.Start(t, cfg, pluginenv.PluginConfig(t, pluginPkg, `{"session_header":"x-session","session_from_user":true,"metrics_flush_period":"20ms"}`))
	for _, sess := range []string{"alice", "bob", "carol"} {
		var home string
		for i := range 6 {
			body := fmt.Sprintf(`{"model":"m","prompt":"unrelated prompt %d of %s"}`, i, sess)
			resp, out := e.Do(t, "POST", "/v1/completions", body, "x-session", sess)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			got := resp.Header.Get("x-upstream-name")
			if home == "" {
				home = got
			} else if got != home {
				t.Fatalf("session %s: request %d went to %s, earlier ones to %s", sess, i, got, home)
			}
			// Sessions through the user field, checked below.
			e.Do(t, "POST", "/v1/completions", fmt.Sprintf(`{"model":"m","prompt":"other %d","user":%q}`, i, "u-"+sess))
		}
	}
	users := map[string]string{}
	for i := range 6 {
		resp, _ := e.Do(t, "POST", "/v1/completions", fmt.Sprintf(`{"model":"m","prompt":"more %d","user":"u-alice"}`, i))
		users[resp.Header.Get("x-upstream-name")] = "seen"
	}
	if len(users) != 1 {
		t.Errorf("user u-alice went to %v", users)
	}
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="session"}`, "")
}

// TestEndToEndJSONLoads: when sluice.upstream_loads refuses the pool's
// name (over 1 KiB), the plugin reads the loads from the
// sluice.upstream_stats JSON for that snapshot and routes as usual: a
// conversation's turns stay on one endpoint.
func TestEndToEndJSONLoads(t *testing.T) {
	long := strings.Repeat("p", 1100)
	cfg := proxy.NewConfig().WithUpstream(long, endpointURLs(t, 3)...)
	e := pluginenv.Start(t, cfg, pluginenv.PluginConfig(t, pluginPkg, `{"metrics_flush_period":"20ms","pool":"`+long+`"}`))
	home := send(t, e, chatTurn(7, "first"))
	for i := range 4 {
		if got := send(t, e, chatTurn(7, fmt.Sprint("turn ", i))); got != home {
			t.Fatalf("turn %d went to %s, the conversation's prefix is on %s\nlogs: %s", i, got, home, e.Logs)
		}
	}
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="prefix"}`, "4")
}

// endpointURLs starts n test endpoints named e0… (closed when the test
// ends) and returns their URLs.
func endpointURLs(t *testing.T, n int) []string {
	t.Helper()
	var urls []string
	for i := range n {
		up := proxytest.NewServer(proxytest.Options{Name: "e" + strconv.Itoa(i)})
		t.Cleanup(up.Close)
		urls = append(urls, up.URL)
	}
	return urls
}

// TestEndToEndWithoutExtensions: on a host that lacks Sluice's foreign
// functions one by one (NOT_FOUND, as Envoy answers), the plugin takes
// each fallback, says so once in the log, and still keeps every turn of
// a conversation on the endpoint of its first: without
// sluice.upstream_loads it reads the sluice.upstream_stats JSON; without
// sluice.prompt_prefix_match and _record it reads and writes the index's
// keys itself; without sluice.prompt_block_hashes too it hashes every
// prompt itself; without
// sluice.shared_data_policy its index is unbounded (warned); without
// sluice.skip_callbacks it gets every callback.
func TestEndToEndWithoutExtensions(t *testing.T) {
	for _, c := range []struct {
		hidden      []string
		logs        []string // each logged once: a request's fallback, remembered
		start       string   // logged at start (by each instance the host starts)
		guestHashed bool     // every prompt hashed by the plugin
	}{
		{[]string{"sluice.upstream_loads"}, []string{"the host has no sluice.upstream_loads; reading sluice.upstream_stats instead"}, "", false},
		{[]string{"sluice.prompt_prefix_claim"}, []string{"the host has no sluice.prompt_prefix_claim; two instances may start one prefix on two endpoints"}, "", false},
		{[]string{"sluice.prompt_prefix_match", "sluice.prompt_prefix_record"},
			[]string{"the host has no sluice.prompt_prefix_match; the plugin reads and writes the index's keys itself"}, "", false},
		{[]string{"sluice.prompt_prefix_match", "sluice.prompt_prefix_record", "sluice.prompt_block_hashes", "sluice.shared_data_policy", "sluice.skip_callbacks"},
			[]string{"the host has no sluice.prompt_prefix_match; the plugin reads and writes the index's keys itself",
				"the host has no sluice.prompt_block_hashes; the plugin reads and hashes each prompt itself"},
			"the host does not bound shared data", true},
	} {
		t.Run(strings.Join(c.hidden, ","), func(t *testing.T) {
			cfg := proxy.NewConfig().WithUpstream("llm", endpointURLs(t, 3)...)
			pc := pluginenv.PluginConfig(t, pluginPkg, `{"metrics_flush_period":"20ms"}`)
			pc.Instances = 1 // each fallback logged once
			e := pluginenv.StartHiding(t, c.hidden, cfg, pc)
			const convs, turns = 3, 3
			for conv := range convs {
				home := send(t, e, chatTurn(40+conv, "first"))
				for i := range turns {
					if got := send(t, e, chatTurn(40+conv, fmt.Sprint("turn ", i))); got != home {
						t.Fatalf("conversation %d turn %d went to %s, its prefix is on %s\nlogs: %s", conv, i, got, home, e.Logs)
					}
				}
			}
			for _, want := range c.logs {
				if n := strings.Count(e.Logs.String(), want); n != 1 {
					t.Errorf("%q logged %d times, want once:\n%s", want, n, e.Logs)
				}
			}
			if c.start != "" && !strings.Contains(e.Logs.String(), c.start) {
				t.Errorf("%q not logged:\n%s", c.start, e.Logs)
			}
			waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="prefix"}`, fmt.Sprint(convs*turns))
			guestHashed := 0
			if c.guestHashed {
				guestHashed = convs * (turns + 1)
			}
			waitMetric(t, e, `guest_hashed_total{plugin="cacheaware"}`, fmt.Sprint(guestHashed))
		})
	}
}
