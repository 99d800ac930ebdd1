package sim

import (
	"bufio"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads e's /metrics into a map from "name{labels}" to value.
func scrape(t *testing.T, e *Engine) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q", ct)
	}
	m := make(map[string]float64)
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", l)
		}
		m[l[:i]] = v
	}
	return m
}

// The metrics Sluice's scraper reads (proxy/upstream/engine_metrics.go) and the
// vLLM counters move as vLLM's do.
func TestMetricsMove(t *testing.T) {
	e := newManual(t, Config{Model: "m", NumBlocks: 7, MaxNumSeqs: 2, MaxBatchedTokens: 256})
	get := func(m map[string]float64, name string) float64 {
		t.Helper()
		v, ok := m[name+`{model_name="m"}`]
		if !ok {
			t.Fatalf("no %s{model_name=\"m\"} in the scrape", name)
		}
		return v
	}
	m := scrape(t, e)
	for _, n := range []string{"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
		"vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:prompt_tokens_total",
		"vllm:generation_tokens_total", "vllm:num_preemptions_total", "vllm:time_to_first_token_seconds_count"} {
		if get(m, n) != 0 {
			t.Errorf("%s starts at %v", n, get(m, n))
		}
	}
	p := textOf("shar", 40)
	a := submitText(t, e, p, 30, true) // 70 tokens, 5 blocks each, 2 shared: 8 > 7, so one is preempted
	b := submitText(t, e, p, 30, true)
	c := submitText(t, e, textOf("cccc", 10), 20, true)
	m = scrape(t, e)
	if get(m, "vllm:num_requests_waiting") != 3 || get(m, "vllm:num_requests_running") != 0 {
		t.Fatalf("queued: %v", m)
	}
	// a hits nothing; b, admitted in the same step, hits a's 2 full
	// blocks, named when a's prefill was scheduled (as in vLLM V1).
	e.step()
	m = scrape(t, e)
	if get(m, "vllm:num_requests_running") != 2 || get(m, "vllm:num_requests_waiting") != 1 {
		t.Fatalf("after one step: running %v waiting %v, want 2 and 1 (max_num_seqs 2)",
			get(m, "vllm:num_requests_running"), get(m, "vllm:num_requests_waiting"))
	}
	if u := get(m, "vllm:kv_cache_usage_perc"); u != 4.0/7 {
		t.Errorf("kv usage %v, want 4/7 (a's 3 blocks, 2 of them shared with b, and b's last)", u)
	}
	if get(m, "vllm:prompt_tokens_total") != 80 || get(m, "vllm:generation_tokens_total") != 2 ||
		get(m, "vllm:prefix_cache_queries_total") != 80 || get(m, "vllm:prefix_cache_hits_total") != 32 {
		t.Errorf("after the first step: %v", m)
	}
	runUntil(t, e, 1000, a, b, c)
	d := submitText(t, e, p, 20, true) // hits the 2 full blocks of p
	runUntil(t, e, 1000, d)
	m = scrape(t, e)
	st := e.Stats()
	if get(m, "vllm:generation_tokens_total") != 100 || get(m, "vllm:prompt_tokens_total") != 130 ||
		get(m, "vllm:prefix_cache_hits_total") < 32 ||
		get(m, "vllm:num_preemptions_total") != float64(st.Preemptions) || st.Preemptions == 0 ||
		get(m, "vllm:prefix_cache_hits_total") != float64(st.PrefixHits) ||
		get(m, "vllm:prefix_cache_queries_total") != float64(st.PrefixQueries) ||
		get(m, "vllm:kv_cache_usage_perc") != 0 || get(m, "vllm:num_requests_running") != 0 {
		t.Errorf("at the end: %v; stats %+v", m, st)
	}
	if get(m, "vllm:time_to_first_token_seconds_count") != 4 ||
		m[`vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"}`] != 4 ||
		m[`vllm:request_success_total{finished_reason="length",model_name="m"}`] != 4 {
		t.Errorf("histogram or success counter: %v", m)
	}
	// Buckets are cumulative and end at the count.
	prev := 0.0
	for _, ub := range ttftBuckets {
		v := m[`vllm:time_to_first_token_seconds_bucket{le="`+strconv.FormatFloat(ub, 'g', -1, 64)+`",model_name="m"}`]
		if v < prev {
			t.Errorf("bucket le=%v: %v < %v", ub, v, prev)
		}
		prev = v
	}
}

// Engines in one process keep separate metrics.
func TestMetricsPerEngine(t *testing.T) {
	e1 := newManual(t, Config{Model: "one"})
	e2 := newManual(t, Config{Model: "two"})
	runUntil(t, e1, 100, submitText(t, e1, "hello", 3, true))
	if v := scrape(t, e1)[`vllm:generation_tokens_total{model_name="one"}`]; v != 3 {
		t.Errorf("engine one: %v tokens", v)
	}
	if v, ok := scrape(t, e2)[`vllm:generation_tokens_total{model_name="two"}`]; !ok || v != 0 {
		t.Errorf("engine two: %v tokens (present %v)", v, ok)
	}
}

// Over HTTP, a repeated long prompt moves the prefix-cache hit counter
// that a scraper reads, and the second request's TTFT is shorter.
func TestRepeatedPromptOverHTTP(t *testing.T) {
	e, srv := startServer(t, fast)
	body := `{"messages":[{"role":"system","content":"` + strings.Repeat("You are a careful assistant. ", 40) +
		`"},{"role":"user","content":"hi"}],"max_tokens":2,"ignore_eos":true}`
	if code, b := post(t, srv.URL+"/v1/chat/completions", body); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	first := e.Stats()
	if code, b := post(t, srv.URL+"/v1/chat/completions", body); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	m := scrape(t, e)
	hits := m[`vllm:prefix_cache_hits_total{model_name="`+DefaultModel+`"}`]
	queries := m[`vllm:prefix_cache_queries_total{model_name="`+DefaultModel+`"}`]
	prompt := first.PromptTokens
	if want := float64((prompt - 1) / 16 * 16); hits != want || queries != float64(2*prompt) {
		t.Fatalf("hits %v of %v queried tokens, want %v of %v", hits, queries, want, 2*prompt)
	}
	// Each request arrived at an idle engine, so its TTFT is its prefill
	// step exactly, whatever the wall clock did.
	c := e.cfg
	second := e.Stats().TTFTSum - first.TTFTSum
	if want := c.StepOverhead + time.Duration(prompt)*c.PrefillPerToken; first.TTFTSum != want {
		t.Errorf("first TTFT %v, want %v", first.TTFTSum, want)
	}
	if want := c.StepOverhead + time.Duration(prompt-int64(hits))*c.PrefillPerToken; second != want {
		t.Errorf("second TTFT %v, want %v", second, want)
	}
}
