package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// dashboardPath is the Grafana dashboard shipped in the repository.
const dashboardPath = "../../deploy/grafana/sluice-dashboard.json"

// TestScrapeAfterTraffic runs the binary with an admin listener, a
// ratelimit plugin and a pool whose engine metrics are scraped, sends
// plain, streaming, overloaded (429), refused (413) and plugin-limited
// (429) traffic, then scrapes the admin port's /metrics and checks it:
// promtool check metrics finds nothing (issue 13: 27 complaints, 43 with
// plugins), and every PromQL expression of the Grafana dashboard names
// metrics the scrape has.
func TestScrapeAfterTraffic(t *testing.T) {
	rl := pluginenv.PluginPath(t, "plugins/ratelimit")
	fast := proxytest.NewServer(proxytest.Options{Tokens: 3})
	defer fast.Close()
	slow := proxytest.NewServer(proxytest.Options{Tokens: 100000, TokenDelay: 20 * time.Millisecond})
	defer slow.Close()
	adminPort := freePort(t)
	s := startSluice(t, "max_concurrent_requests: 1\nmax_request_body_size: 2000\n"+
		"admin: {port: "+strconv.Itoa(adminPort)+"}\n"+
		"upstreams:\n"+
		"  - {name: fast, endpoints: ['"+fast.URL+"'], metrics_path: /metrics, models: [m]}\n"+
		"  - {name: slow, endpoints: ['"+slow.URL+"'], models: [slow]}\n"+
		"plugins:\n"+
		"  - {name: ratelimit, path: '"+rl+"', config: {requests_per_minute: 4}, call_timeout: 2s}\n")
	admin := "http://127.0.0.1:" + strconv.Itoa(adminPort)

	post := func(body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", s.base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, b := plugintest.RoundTrip(t, http.DefaultClient, req)
		return resp.StatusCode, b
	}
	const plain = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	if code, body := post(plain); code != 200 {
		t.Fatalf("plain request: %d %s", code, body)
	}
	if code, body := post(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`); code != 200 || !strings.Contains(body, "[DONE]") {
		t.Fatalf("streamed request: %d %s", code, body)
	}
	// A stream from the slow pool holds the only admission slot.
	resp, err := http.Post(s.base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data:") {
		t.Fatalf("slow stream: %q %v", line, err)
	}
	if code, body := post(plain); code != 429 || !strings.Contains(body, "overloaded") {
		t.Fatalf("request at capacity: %d %s", code, body)
	}
	resp.Body.Close()
	waitForFreeSlot(t, admin)
	if code, _ := post(strings.Repeat("x", 3000)); code != 413 {
		t.Fatalf("body over max_request_body_size: %d", code)
	}
	limited := false
	for i := 0; i < 10 && !limited; i++ {
		code, body := post(plain)
		limited = code == 429 && strings.Contains(body, "rate_limit_exceeded")
	}
	if !limited {
		t.Fatal("the ratelimit plugin never answered 429")
	}

	scrape := get(t, admin+"/metrics")
	for _, want := range []string{
		`sluice_responses_total{code="429"} 2`, `sluice_responses_total{code="413"} 1`,
		`sluice_requests_rejected_total{reason="overloaded"} 1`, `sluice_requests_rejected_total{reason="bad_request"} 1`,
		`sluice_wasm_ratelimit_limited_total{plugin="ratelimit",type="requests"} 1`,
	} {
		if !strings.Contains(scrape, "\n"+want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if bare := regexp.MustCompile(`(?m)^# HELP \S+ Undescribed.*$`).FindAllString(scrape, -1); len(bare) > 0 {
		t.Errorf("families without a registered HELP text (exposition.Describe):\n%s", strings.Join(bare, "\n"))
	}
	if resp, err := http.Get(s.base + "/metrics"); err != nil || resp.StatusCode != 404 {
		t.Errorf("main port /metrics with an admin listener: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}

	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, scrape) })
	t.Run("dashboard", func(t *testing.T) { checkDashboard(t, scrape) })
}

// waitForFreeSlot polls the admin /health until no request holds a slot.
func waitForFreeSlot(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(get(t, admin+"/health"), `"active_requests":0`) {
		if time.Now().After(deadline) {
			t.Fatal("the closed stream's slot was never released")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, b := plugintest.RoundTrip(t, http.DefaultClient, req)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

// promtoolCheck runs `promtool check metrics` (Debian package prometheus,
// installed by .ci/run) on the scrape: it exits non-zero and prints one
// line per problem (missing HELP, a counter without _total, a bad
// histogram...).
func promtoolCheck(t *testing.T, scrape string) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		plugintest.SkipOrFail(t, "promtool not on PATH (Debian package prometheus)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Query json.RawMessage `json:"query"`
			Type  string          `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

// checkDashboard: every PromQL expression of the dashboard (panel targets
// and template variables) names only metrics the scrape has, and the
// panels the issue asks for are there.
func checkDashboard(t *testing.T, scrape string) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	exposed := sampleNames(scrape)
	var exprs []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("template variable query: %v", err)
		}
		exprs = append(exprs, q.Query)
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("query names no metric: %s", e)
		}
		for _, n := range names {
			used[n] = true
			if !exposed[n] {
				t.Errorf("query uses %s, which Sluice does not expose: %s", n, e)
			}
		}
	}
	// The panels issue 13 lists: status and errors, 429s, TTFT and
	// duration quantiles, tokens per model, endpoint health, engine queue
	// depth and KV cache, plugin failures.
	for _, n := range []string{
		"sluice_responses_total", "sluice_requests_rejected_total", "sluice_time_to_first_token_seconds_bucket",
		"sluice_request_duration_seconds_bucket", "sluice_tokens_total", "sluice_endpoint_healthy",
		"sluice_endpoint_queue_depth", "sluice_endpoint_kv_cache_usage", "sluice_plugin_errors_total",
	} {
		if !used[n] {
			t.Errorf("no dashboard query uses %s", n)
		}
	}
}

// sampleNames returns the metric names of the scrape's samples
// (histogram series with their _bucket, _sum and _count suffixes).
func sampleNames(scrape string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(scrape, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			m[l[:i]] = true
		}
	}
	return m
}

var (
	promqlStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlBraces   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlNumbers  = regexp.MustCompile(`\boffset\s+\S+|\b[0-9][0-9a-zA-Z_.]*`)
	promqlLabelArg = regexp.MustCompile(`\blabel_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)`)
	promqlIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promqlKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression (or a Grafana
// label_values() query) selects: identifiers that are not functions,
// keywords, label names in matchers or groupings, strings or durations.
func metricNames(expr string) []string {
	e := promqlLabelArg.ReplaceAllString(expr, "$1")
	e = promqlStrings.ReplaceAllString(e, " ")
	e = promqlBraces.ReplaceAllString(e, " ")
	e = promqlGrouping.ReplaceAllString(e, " ")
	e = promqlNumbers.ReplaceAllString(e, " ")
	seen := map[string]bool{}
	for _, m := range promqlIdent.FindAllStringSubmatch(e, -1) {
		if m[1] != "" || promqlKeywords[strings.ToLower(m[0])] {
			continue // a function call, or a keyword
		}
		seen[m[0]] = true
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestMetricNames pins the PromQL name extraction checkDashboard relies on.
func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{instance=~"$instance",x="b c"}[$__rate_interval])))`: "a_bucket",
		`sum(rate(x_total{code=~"5.."}[5m])) / sum(rate(y_total[5m])) > bool 1e3`:                                        "x_total y_total",
		`label_values(sluice_build_info, instance)`:                                                                      "sluice_build_info",
		`max without (endpoint) (g) or on (upstream) group_left (model) h offset 5m`:                                     "g h",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}
