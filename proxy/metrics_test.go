package proxy

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// scrape returns the proxy's /metrics body, from url (a main or admin
// listener).
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, body := doRequest(t, newClient(), "GET", url+"/metrics", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/metrics: %d %s", url, resp.StatusCode, body)
	}
	return body
}

// wantLines fails t for each line of want missing from the scrape.
func wantLines(t *testing.T, scrape string, want ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(scrape, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("scrape lacks the line %q", w)
		}
	}
}

// TestRequestsTotalCountsRejections: every request on the proxy path is in
// sluice_requests_total, the ones turned away included: a 429 at
// capacity, a 413 refused while its body was read, a 431 refused by the
// head parser (issue 13: after five 429s requests_total was 23 and
// success_rate 1). Each answer is in sluice_responses_total{code}, and
// the success rate counts the refusals as not successful.
func TestRequestsTotalCountsRejections(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Fail: proxytest.FailHang})
	cfg := baseConfig(up.URL).WithMaxConcurrentRequests(1).WithMaxRequestBodySize(1000)
	p := startProxy(t, cfg, Options{})
	c := newClient()
	holdDone := make(chan struct{})
	go func() { // holds the only slot: the upstream never answers
		defer close(holdDone)
		req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatBody))
		if resp, err := newClient().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "slot taken", func() bool { return p.Router().Metrics().Active == 1 })
	if resp, _ := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil); resp.StatusCode != 429 {
		t.Fatalf("at capacity: status %d, want 429", resp.StatusCode)
	}
	if resp, _ := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", strings.Repeat("x", 2000), nil); resp.StatusCode != 413 {
		t.Fatalf("body over max_request_body_size: status %d, want 413", resp.StatusCode)
	}
	big := strings.Repeat("a", 70<<10)
	if code, err := sendThenRead(t, p.Addr, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: "+big+"\r\n\r\n", 0); err != nil || code != 431 {
		t.Fatalf("head over the limit: status %d, err %v; want 431", code, err)
	}
	up.Close() // ends the held request (502)
	<-holdDone
	checkSlotsFree(t, p.Router())
	m := p.Router().Metrics()
	if m.Total != 4 || m.Rejected != 1 || m.Refused != 2 || m.Completed+m.Failed != 1 {
		t.Fatalf("metrics = %+v; want 4 requests: 1 admitted, 1 rejected, 2 refused", m)
	}
	if got := m.SuccessRate(); got > 0.25 {
		t.Fatalf("success rate %v with 3 of 4 requests turned away", got)
	}
	wantLines(t, scrape(t, p.URL),
		"sluice_requests_total 4",
		`sluice_requests_rejected_total{reason="overloaded"} 1`,
		`sluice_requests_rejected_total{reason="bad_request"} 2`,
		`sluice_requests_rejected_total{reason="body_buffer_full"} 0`,
		`sluice_responses_total{code="429"} 1`,
		`sluice_responses_total{code="413"} 1`,
		`sluice_responses_total{code="431"} 1`,
	)
}

// TestScrapeHasMetadataAndLeHistograms: every family has HELP text and a
// TYPE; the latency histograms have Prometheus "le" buckets (issue 13:
// VictoriaMetrics vmrange buckets, which histogram_quantile cannot use);
// go_*, process_* and sluice_build_info are there.
func TestScrapeHasMetadataAndLeHistograms(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 3})
	p := startProxy(t, baseConfig(up.URL), Options{})
	c := newClient()
	for _, body := range []string{chatBody, chatStreamBody} {
		if resp, got := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", body, nil); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
	}
	s := scrape(t, p.URL)
	if strings.Contains(s, "vmrange") {
		t.Error("the scrape has vmrange buckets")
	}
	for _, fam := range []string{"sluice_request_duration_seconds", "sluice_time_to_first_token_seconds", "sluice_stream_event_interval_seconds"} {
		if !strings.Contains(s, "\n# TYPE "+fam+" histogram\n") || !strings.Contains(s, "\n"+fam+`_bucket{`) ||
			!strings.Contains(s, `le="+Inf"} `) {
			t.Errorf("%s is not a Prometheus le histogram", fam)
		}
	}
	wantLines(t, s, `sluice_request_duration_seconds_bucket{le="600"} 2`, `sluice_request_duration_seconds_count 2`)
	helps, types := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "# HELP "):
			if len(f) < 4 || strings.Contains(l, undescribedForTest) {
				t.Errorf("no help text: %q", l)
			}
			helps[f[2]] = true
		case strings.HasPrefix(l, "# TYPE "):
			types[f[2]] = true
		}
	}
	for _, fam := range []string{"sluice_requests_total", "sluice_endpoint_healthy", "sluice_build_info", "go_goroutines", "process_open_fds", "process_cpu_seconds_total"} {
		if !helps[fam] || !types[fam] {
			t.Errorf("family %s: HELP %v, TYPE %v", fam, helps[fam], types[fam])
		}
	}
	if !strings.Contains(s, "\nsluice_build_info{version=\"") {
		t.Error("no sluice_build_info series")
	}
}

// undescribedForTest is exposition's text for a family nobody described.
const undescribedForTest = "Undescribed Sluice metric."

// TestAdminListener: with admin set, /metrics is served by the admin
// handler only (the main port answers 404, so it does not publish
// endpoint addresses); /health and /ready answer on both. Without admin
// the main port serves /metrics as before.
func TestAdminListener(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	cfg := baseConfig(up.URL)
	cfg.Admin = AdminConfig{Port: 1}
	p := startProxy(t, cfg, Options{})
	admin := httptest.NewServer(p.AdminHandler())
	defer admin.Close()
	c := newClient()
	if resp, body := doRequest(t, c, "GET", p.URL+"/metrics", "", nil); resp.StatusCode != 404 || strings.Contains(body, "sluice_endpoint") {
		t.Fatalf("main port /metrics with admin set: %d %q", resp.StatusCode, body)
	}
	for _, base := range []string{p.URL, admin.URL} {
		for _, path := range []string{"/health", "/ready"} {
			if resp, body := doRequest(t, c, "GET", base+path, "", nil); resp.StatusCode != 200 || !strings.Contains(body, `"status":"healthy"`) {
				t.Errorf("GET %s%s: %d %q", base, path, resp.StatusCode, body)
			}
		}
	}
	s := scrape(t, admin.URL)
	if !strings.Contains(s, `sluice_endpoint_healthy{upstream="default",endpoint=`) || !strings.Contains(s, "# HELP sluice_requests_total ") {
		t.Fatalf("admin /metrics:\n%s", s)
	}
	if resp, _ := doRequest(t, c, "GET", admin.URL+"/v1/models", "", nil); resp.StatusCode != 404 {
		t.Fatalf("admin listener proxied a request: %d", resp.StatusCode)
	}
	p.Router().StartDrain()
	if resp, _ := doRequest(t, c, "GET", admin.URL+"/ready", "", nil); resp.StatusCode != 503 {
		t.Fatalf("admin /ready while draining: %d, want 503", resp.StatusCode)
	}

	plain := startProxy(t, baseConfig(up.URL), Options{})
	if s := scrape(t, plain.URL); !strings.Contains(s, "sluice_requests_total") {
		t.Fatal("without admin the main port does not serve /metrics")
	}
}

// TestResponseCodesHammer: goroutines counting answers by code, the
// counters created on first use by whichever goroutine sees a code first,
// while scrapes run: no count is lost and no series is created twice.
func TestResponseCodesHammer(t *testing.T) {
	srv := newServer(t, baseConfig("http://127.0.0.1:9"), Options{})
	const workers, per = 8, 2000
	codes := []int{200, 429, 413, 502, 499}
	done := make(chan struct{})
	scrapes := make(chan struct{})
	go func() {
		defer close(scrapes)
		for {
			select {
			case <-done:
				return
			default:
				var b strings.Builder
				srv.WriteMetrics(&b)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				srv.responses.inc(codes[(w+i)%len(codes)])
			}
		}(w)
	}
	wg.Wait()
	close(done)
	<-scrapes
	var b strings.Builder
	srv.WriteMetrics(&b)
	s := b.String()
	for _, c := range codes {
		want := `sluice_responses_total{code="` + strconv.Itoa(c) + `"} ` + strconv.Itoa(workers*per/len(codes))
		if strings.Count(s, `sluice_responses_total{code="`+strconv.Itoa(c)+`"}`) != 1 || !strings.Contains(s, "\n"+want+"\n") {
			t.Errorf("want one line %q:\n%s", want, s)
		}
	}
}
