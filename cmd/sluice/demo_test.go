package main

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDemoStreamsAtSimulatedPace: the -demo engine streams one event per
// token at the time model's pace (sim's defaults: a decode step of a
// single sequence costs 6 ms + 60 µs), not all at once. Only a lower
// bound is asserted: sleeping can make a stream slower on a loaded
// machine, never faster.
func TestDemoStreamsAtSimulatedPace(t *testing.T) {
	d, err := startDemo()
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	const tokens = 20
	start := time.Now()
	resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"demo","stream":true,"max_tokens":20,"ignore_eos":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	events := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "data: ") && line != "data: [DONE]" && strings.Contains(line, `"content"`) {
			events++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if events < tokens {
		t.Errorf("%d content events, want at least %d (one per token)", events, tokens)
	}
	if min := time.Duration(tokens) * 6 * time.Millisecond; elapsed < min {
		t.Errorf("%d tokens streamed in %v, faster than the time model's %v", tokens, elapsed, min)
	}
	if got := d.upstream(); got.MetricsPath != "/metrics" || len(got.Endpoints) != 1 || got.Endpoints[0] != d.url {
		t.Errorf("demo upstream = %+v", got)
	}
}
