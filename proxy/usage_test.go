package proxy

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// metricValue returns the value of the sample line that starts with
// series in the proxy's metrics, or -1.
func metricValue(t *testing.T, p *testProxy, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(metricsText(t, p), "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return v
		}
	}
	return -1
}

const streamUsageBody = `{"model":"m","messages":[{"role":"user","content":"one two three"}],"stream":true,"stream_options":{"include_usage":true}}`

func streamAll(t *testing.T, url, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	if err := sseEvents(resp.Body, func(string) { n++ }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUsageMetrics(t *testing.T) {
	for _, withFilter := range []bool{false, true} {
		name := "no filters"
		var opts Options
		if withFilter { // response chunks then pass through the filter chain
			name = "filtered"
			opts.Filters = []Filter{&funcFilter{name: "noop"}}
		}
		t.Run(name, func(t *testing.T) {
			up := startUpstream(t, proxytest.Options{Tokens: 6, TokenDelay: 5 * time.Millisecond})
			p := startProxy(t, baseConfig(up.URL), opts)
			if n := streamAll(t, p.URL, streamUsageBody); n != 8 { // 6 tokens, usage, [DONE]
				t.Fatalf("%d events", n)
			}
			waitFor(t, "stream finished", func() bool { return p.Router().Metrics().Active == 0 })
			want := map[string]float64{
				`sluice_tokens_total{model="m",kind="prompt"}`:              3,
				`sluice_tokens_total{model="m",kind="completion"}`:          6,
				`sluice_time_to_first_token_seconds_count{model="m"}`:       1,
				`sluice_stream_event_interval_seconds_count{model="m"}`:     6, // 7 data events
				`sluice_responses_without_usage_total{model="m"}`:           0,
				`sluice_time_to_first_token_seconds_count{model="other"}`:   0, // no sample
				`sluice_stream_event_interval_seconds_count{model="other"}`: 0,
			}
			for series, v := range want {
				if got := metricValue(t, p, series); got != v {
					t.Errorf("%s = %v, want %v", series, got, v)
				}
			}
			// A non-streamed answer adds its usage.
			resp, _ := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions",
				`{"model":"m","messages":[{"role":"user","content":"a b"}],"max_tokens":4}`, nil)
			if resp.StatusCode != 200 {
				t.Fatal(resp.Status)
			}
			waitFor(t, "request finished", func() bool { return p.Router().Metrics().Active == 0 })
			if got := metricValue(t, p, `sluice_tokens_total{model="m",kind="prompt"}`); got != 5 {
				t.Errorf("prompt tokens %v, want 3+2", got)
			}
			if got := metricValue(t, p, `sluice_tokens_total{model="m",kind="completion"}`); got != 10 {
				t.Errorf("completion tokens %v, want 6+4", got)
			}
			if got := metricValue(t, p, `sluice_time_to_first_token_seconds_count{model="m"}`); got != 1 {
				t.Errorf("a non-streamed answer counted a first token: %v", got)
			}
			// A stream without include_usage has no usage to count.
			streamAll(t, p.URL, chatStreamBody)
			waitFor(t, "stream finished", func() bool { return p.Router().Metrics().Active == 0 })
			if got := metricValue(t, p, `sluice_responses_without_usage_total{model="m"}`); got != 1 {
				t.Errorf("responses without usage %v", got)
			}
			if got := metricValue(t, p, `sluice_time_to_first_token_seconds_count{model="m"}`); got != 2 {
				t.Errorf("TTFT count %v", got)
			}
		})
	}
}

// TestTTFTMeasuresTheFirstChunk checks that TTFT spans the upstream's
// wait before its first event, not the whole stream.
func TestTTFTMeasuresTheFirstChunk(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 4, TokenDelay: 150 * time.Millisecond})
	p := startProxy(t, baseConfig(up.URL), Options{})
	start := time.Now()
	streamAll(t, p.URL, streamUsageBody)
	total := time.Since(start).Seconds()
	waitFor(t, "stream finished", func() bool { return p.Router().Metrics().Active == 0 })
	// The headers go out at once; the first token comes 150ms later, the
	// last 600ms later.
	m := metricsText(t, p)
	if !regexp.MustCompile(`sluice_time_to_first_token_seconds_bucket\{model="m",le="[^"]+"\} 1`).MatchString(m) {
		t.Fatalf("no TTFT sample:\n%s", testsync.Grep(m, "first_token"))
	}
	if sum := metricValue(t, p, `sluice_time_to_first_token_seconds_sum{model="m"}`); sum < 0.14 || sum > total-0.2 {
		t.Fatalf("TTFT %vs for a 4×150ms stream that took %vs", sum, total)
	}
	if sum := metricValue(t, p, `sluice_stream_event_interval_seconds_sum{model="m"}`); sum < 0.3 {
		t.Fatalf("event intervals sum to %vs, want about 3×150ms", sum)
	}
}

func TestModelLabelCardinality(t *testing.T) {
	// No pool lists models: the first names seen are learnt, then "other".
	ms := newModelMetricSet(metrics.NewSet(), NewConfig().WithRoute(RouteMatch{Model: "routed"}, "x").
		WithRoute(RouteMatch{Model: "prefix-*"}, "x"))
	if ms.lookup([]byte("routed")) == ms.other {
		t.Fatal("a route's model has no series")
	}
	if _, ok := (*ms.known.Load())["prefix-"]; ok {
		t.Fatal("a route prefix got a series")
	}
	for i := range maxLearnedModels + 10 {
		ms.lookup([]byte("model-" + strconv.Itoa(i)))
	}
	if n := len(*ms.known.Load()); n != maxLearnedModels+1 {
		t.Fatalf("%d series, want %d learnt + 1 configured", n, maxLearnedModels)
	}
	if ms.lookup([]byte("model-99")) != ms.other || ms.lookup([]byte("model-3")) == ms.other {
		t.Fatal("learning past the cap, or forgetting")
	}
	// A reload's generation shares the set and inherits the learnt names:
	// the same series, and the cap holds across reloads.
	next := newModelMetricSet(ms.set, NewConfig())
	next.inherit(ms)
	if next.lookup([]byte("model-3")).prompt != ms.lookup([]byte("model-3")).prompt || next.lookup([]byte("model-98")) != next.other {
		t.Fatal("a reload forgot the learnt names, or learnt past the cap")
	}
	// Pools list models: only those (and aliases) have series.
	cfg := NewConfig().WithUpstreamConfig(UpstreamConfig{Name: "a", Endpoints: []string{"http://127.0.0.1:1"},
		Models: []string{"*", "known"}, ModelAliases: map[string]string{"al": "known"}})
	ms = newModelMetricSet(metrics.NewSet(), cfg)
	if ms.lookup([]byte("known")) == ms.other || ms.lookup([]byte("al")) == ms.other ||
		ms.lookup([]byte("anything")) != ms.other || ms.lookup([]byte("*")) != ms.other {
		t.Fatal("declared models: wrong series")
	}
}
