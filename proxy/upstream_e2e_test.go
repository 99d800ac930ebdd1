package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// startUpstreams starts n named proxytest servers ("u0", "u1", …).
func startUpstreams(t *testing.T, n int, opts proxytest.Options) []*proxytest.Server {
	t.Helper()
	ups := make([]*proxytest.Server, n)
	for i := range ups {
		o := opts
		o.Name = "u" + strconv.Itoa(i)
		ups[i] = startUpstream(t, o)
	}
	return ups
}

func urlsOf(ups []*proxytest.Server) []string {
	urls := make([]string, len(ups))
	for i, u := range ups {
		urls[i] = u.URL
	}
	return urls
}

// servedBy sends n sequential requests and counts the x-upstream-name of
// the answers; any status but 200 fails the test.
func servedBy(t *testing.T, c *http.Client, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		resp, body := doRequest(t, c, "POST", url+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got[resp.Header.Get("x-upstream-name")]++
	}
	return got
}

// metricsText returns the proxy's /metrics page.
func metricsText(t *testing.T, p *testProxy) string {
	t.Helper()
	var b strings.Builder
	p.WriteMetrics(&b)
	return b.String()
}

func TestLBRoundRobinWeightedE2E(t *testing.T) {
	ups := startUpstreams(t, 2, proxytest.Options{})
	p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: urlsOf(ups), Weights: []int{3, 1},
	}), Options{})
	got := servedBy(t, newClient(), p.URL, 40)
	if got["u0"] != 30 || got["u1"] != 10 {
		t.Fatalf("3:1 weighted round robin over 40 requests: %v", got)
	}
	checkSlotsFree(t, p.Router())
}

func TestLBRandomWeightedE2E(t *testing.T) {
	ups := startUpstreams(t, 2, proxytest.Options{})
	p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: urlsOf(ups), Weights: []int{3, 1}, LBPolicy: LBRandom,
	}), Options{})
	got := servedBy(t, newClient(), p.URL, 400)
	if share := float64(got["u0"]) / 400; share < 0.62 || share > 0.88 { // expected 0.75, sd ≈ 0.022
		t.Fatalf("weight 3 of 4 served %.2f: %v", share, got)
	}
}

func TestLBLeastRequestE2E(t *testing.T) {
	ups := startUpstreams(t, 2, proxytest.Options{})
	ups[0].SetFailMode(proxytest.FailHang)
	p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: urlsOf(ups), LBPolicy: LBLeastRequest,
	}), Options{})
	// Send requests one at a time until one hangs on u0 (those that land
	// on u1 return at once).
	var wg sync.WaitGroup
	for i := 0; ups[0].InFlight() == 0; i++ {
		if i == 50 {
			t.Fatal("50 requests and none went to u0")
		}
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		}()
		waitFor(t, "request answered or hanging", func() bool {
			select {
			case <-done:
				return true
			default:
				return ups[0].InFlight() > 0
			}
		})
	}
	got := servedBy(t, newClient(), p.URL, 20)
	if got["u1"] != 20 {
		t.Fatalf("with u0 busy, least_request sent %v", got)
	}
	ups[0].Close() // the hung request fails over to u1
	wg.Wait()
	checkSlotsFree(t, p.Router())
}

func TestLBLeastQueueE2E(t *testing.T) {
	ups := startUpstreams(t, 3, proxytest.Options{})
	for i, w := range []float64{5, 0, 9} {
		if err := ups[i].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: w, Running: 2, KVCacheUsage: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: urlsOf(ups), LBPolicy: LBLeastQueue,
		MetricsPath: "/metrics", ScrapeInterval: Duration(20 * time.Millisecond),
	}), Options{})
	pl := p.pools.List()[0]
	waitFor(t, "first scrapes", func() bool {
		return pl.Endpoints()[0].QueueDepth() == 5 && pl.Endpoints()[2].QueueDepth() == 9
	})
	if got := servedBy(t, newClient(), p.URL, 20); got["u1"] != 20 {
		t.Fatalf("shortest queue is u1, requests went to %v", got)
	}
	// The engines' numbers change: traffic follows.
	_ = ups[1].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineSGLang, Waiting: 12})
	_ = ups[2].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineTGI, Waiting: 1})
	waitFor(t, "new scrapes", func() bool {
		return pl.Endpoints()[1].QueueDepth() == 12 && pl.Endpoints()[2].QueueDepth() == 1
	})
	if got := servedBy(t, newClient(), p.URL, 20); got["u2"] != 20 {
		t.Fatalf("shortest queue is u2, requests went to %v", got)
	}
	m := metricsText(t, p)
	for _, want := range []string{
		`sluice_endpoint_queue_depth{upstream="pool",endpoint="` + ups[1].Addr + `"} 12`,
		`sluice_endpoint_kv_cache_usage{upstream="pool",endpoint="` + ups[0].Addr + `"} 0.5`,
		`sluice_endpoint_running{upstream="pool",endpoint="` + ups[0].Addr + `"} 2`,
		`sluice_endpoint_in_flight{upstream="pool",endpoint="` + ups[0].Addr + `"} 0`,
		`sluice_endpoint_healthy{upstream="pool",endpoint="` + ups[2].Addr + `"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// openStream starts a streaming chat request and returns once its first
// event arrived, with the upstream that serves it; close ends it.
func openStream(t *testing.T, url string) (name string, rest func() (events int, err error), closeFn func()) {
	t.Helper()
	req, err := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(chatStreamBody))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("stream: status %d: %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("first event: %v", err)
	}
	rest = func() (int, error) {
		defer resp.Body.Close()
		n := 0
		err := sseEvents(br, func(string) { n++ })
		return n, err
	}
	return resp.Header.Get("x-upstream-name"), rest, func() { resp.Body.Close() }
}

// TestEndpointCapQueueTimeout503 checks that a request that finds every
// endpoint at its cap waits, and gets 503 naming the pool when
// queue_timeout passes.
func TestEndpointCapQueueTimeout503(t *testing.T) {
	ups := startUpstreams(t, 2, proxytest.Options{TokenDelay: 50 * time.Millisecond, Tokens: 40})
	p := startProxy(t, NewConfig().WithMaxBatchSize(1).WithUpstreamConfig(UpstreamConfig{
		Name: "chat", Endpoints: urlsOf(ups), QueueTimeout: Duration(50 * time.Millisecond),
	}), Options{})
	_, _, close1 := openStream(t, p.URL)
	_, _, close2 := openStream(t, p.URL)
	if ups[0].InFlight() != 1 || ups[1].InFlight() != 1 {
		t.Fatalf("streams not spread: %d %d", ups[0].InFlight(), ups[1].InFlight())
	}
	resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("retry-after-ms") != "1000" {
		t.Fatalf("status %d headers %v body %s", resp.StatusCode, resp.Header, body)
	}
	checkErrorShape(t, true, body, "queue_timeout")
	if !strings.Contains(body, `upstream pool \"chat\" became free`) {
		t.Fatalf("503 body does not name the pool: %s", body)
	}
	if !strings.Contains(metricsText(t, p), `sluice_upstream_rejected_total{upstream="chat",reason="queue_timeout"} 1`) {
		t.Fatal("queue timeout not counted")
	}
	close1()
	close2()
	checkSlotsFree(t, p.Router())
	if ups[0].Requests()+ups[1].Requests() != 2 {
		t.Fatal("the refused request reached an upstream")
	}
}

func TestQueueTimeoutE2E(t *testing.T) {
	t.Run("waits then succeeds", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{Name: "u0", TokenDelay: 20 * time.Millisecond, Tokens: 10})
		p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
			Name: "chat", Endpoints: []string{up.URL}, MaxBatchSize: 1, QueueTimeout: Duration(20 * time.Second),
		}), Options{})
		_, rest, _ := openStream(t, p.URL)
		done := make(chan int, 1)
		go func() {
			resp, _ := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
			done <- resp.StatusCode
		}()
		waitFor(t, "request queued", func() bool { return p.pools.List()[0].Queued() == 1 })
		if up.Requests() != 1 {
			t.Fatal("the queued request reached the upstream past the cap")
		}
		if n, err := rest(); err != nil || n == 0 {
			t.Fatalf("first stream: %d events, %v", n, err)
		}
		if code := <-done; code != 200 {
			t.Fatalf("queued request: status %d", code)
		}
		if !strings.Contains(metricsText(t, p), `sluice_upstream_queue_wait_seconds_count{upstream="chat"} 1`) {
			t.Fatal("queue wait not recorded")
		}
		checkSlotsFree(t, p.Router())
	})
	t.Run("times out with 503", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{Name: "u0", Fail: proxytest.FailHang})
		p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
			Name: "chat", Endpoints: []string{up.URL}, MaxBatchSize: 1, QueueTimeout: Duration(100 * time.Millisecond),
		}), Options{})
		held := make(chan struct{})
		go func() {
			defer close(held)
			req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatBody))
			if resp, err := newClient().Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		waitFor(t, "slot held", func() bool { return up.InFlight() == 1 })
		start := time.Now()
		resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != 503 || time.Since(start) < 100*time.Millisecond {
			t.Fatalf("status %d after %s: %s", resp.StatusCode, time.Since(start), body)
		}
		checkErrorShape(t, true, body, "queue_timeout")
		if !strings.Contains(body, "queue_timeout") {
			t.Fatalf("body does not say the queue timed out: %s", body)
		}
		up.Close()
		<-held
		checkSlotsFree(t, p.Router())
	})
}

// restartAt starts a proxytest server on a closed one's address.
func restartAt(t *testing.T, addr string, opts proxytest.Options) *proxytest.Server {
	t.Helper()
	var ln net.Listener
	var err error
	waitFor(t, "address free again", func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	up := proxytest.NewUnstartedServer(opts)
	up.Listener = ln
	up.Start()
	t.Cleanup(up.Close)
	return up
}

func TestEjectionAndRecoveryE2E(t *testing.T) {
	ups := startUpstreams(t, 3, proxytest.Options{TokenDelay: 30 * time.Millisecond, Tokens: 100})
	for i := 1; i < 3; i++ {
		ups[i].SetOptions(proxytest.Options{Name: "u" + strconv.Itoa(i)})
	}
	p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: urlsOf(ups),
		HealthCheck: &HealthCheckConfig{Interval: Duration(30 * time.Millisecond), Timeout: Duration(30 * time.Millisecond),
			UnhealthyThreshold: 2, HealthyThreshold: 2},
		PassiveEjection: PassiveEjectionConfig{BaseEjection: Duration(200 * time.Millisecond)},
	}), Options{})
	pl := p.pools.List()[0]
	// A long stream on u0, the endpoint about to die.
	var rest func() (int, error)
	for {
		name, r, closeFn := openStream(t, p.URL)
		if name == "u0" {
			rest = r
			break
		}
		closeFn()
	}
	addr := ups[0].Addr
	ups[0].Close()
	// The stream in flight there ends early: the one request lost.
	if n, _ := rest(); n >= 100 {
		t.Fatalf("the killed endpoint's stream delivered all %d events", n)
	}
	// Every later request succeeds: connection failures are retried on
	// another endpoint until u0 is out of rotation.
	got := servedBy(t, newClient(), p.URL, 30)
	if got["u1"]+got["u2"] != 30 {
		t.Fatalf("served by %v", got)
	}
	victim := pl.Endpoints()[0]
	waitFor(t, "killed endpoint failing its health checks", victim.FailsActiveChecks)
	if victim.Up() {
		t.Fatal("an endpoint failing its health checks is in rotation")
	}
	if h := p.UpstreamHealth()["pool"]; h.Healthy != 2 || h.Total != 3 {
		t.Fatalf("health %+v", h)
	}
	// It comes back once it answers its health checks again.
	back := restartAt(t, addr, proxytest.Options{Name: "u0-back"})
	waitFor(t, "endpoint back in rotation", func() bool { return victim.Up() })
	waitFor(t, "traffic back on the endpoint", func() bool {
		return servedBy(t, newClient(), p.URL, 3)["u0-back"] > 0
	})
	if back.HealthChecks() < 2 {
		t.Fatalf("back in rotation after %d health checks, threshold 2", back.HealthChecks())
	}
	checkSlotsFree(t, p.Router())
}

func TestPassiveEjectionE2E(t *testing.T) {
	ups := startUpstreams(t, 2, proxytest.Options{})
	ups[0].SetFailMode(proxytest.Fail500)
	p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: urlsOf(ups),
		PassiveEjection: PassiveEjectionConfig{ConsecutiveFailures: 2, BaseEjection: Duration(time.Hour)},
	}), Options{})
	c := newClient()
	fails := 0
	for range 20 {
		resp, _ := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode == 500 { // a 500 is passed through, not retried
			fails++
		}
	}
	if fails != 2 || ups[0].Requests() != 2 || ups[1].Requests() != 18 {
		t.Fatalf("500s seen %d; u0 got %d, u1 %d: want u0 ejected after 2", fails, ups[0].Requests(), ups[1].Requests())
	}
	m := metricsText(t, p)
	if !strings.Contains(m, `sluice_endpoint_ejections_total{upstream="pool",endpoint="`+ups[0].Addr+`"} 1`) ||
		!strings.Contains(m, `sluice_endpoint_healthy{upstream="pool",endpoint="`+ups[0].Addr+`"} 0`) {
		t.Fatal("ejection not in the metrics")
	}
	if !strings.Contains(m, `sluice_upstream_retries_total{upstream="pool"} 0`) {
		t.Fatal("a 500 was retried")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	a := startUpstreams(t, 2, proxytest.Options{})
	b := startUpstream(t, proxytest.Options{Name: "b"})
	hc := &HealthCheckConfig{Interval: Duration(20 * time.Millisecond), UnhealthyThreshold: 1, HealthyThreshold: 1}
	p := startProxy(t, NewConfig().
		WithUpstreamConfig(UpstreamConfig{Name: "a", Endpoints: urlsOf(a), HealthCheck: hc}).
		WithUpstreamConfig(UpstreamConfig{Name: "b", Endpoints: []string{b.URL}, HealthCheck: hc}), Options{})
	c := newClient()
	health := func() (int, map[string]any) {
		resp, body := doRequest(t, c, "GET", p.URL+"/ready", "", nil)
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("health JSON %q: %v", body, err)
		}
		return resp.StatusCode, v
	}
	code, v := health()
	if code != 200 || v["status"] != "healthy" {
		t.Fatalf("ready: %d %v", code, v)
	}
	if up := v["upstreams"].(map[string]any)["a"].(map[string]any); up["healthy"] != 2.0 || up["total"] != 2.0 {
		t.Fatalf("upstreams: %v", v["upstreams"])
	}
	a[0].SetHealthy(false)
	waitFor(t, "a[0] down", func() bool { return p.UpstreamHealth()["a"].Healthy == 1 })
	if code, _ := health(); code != 200 {
		t.Fatal("not ready with endpoints still healthy")
	}
	a[1].SetHealthy(false)
	b.SetHealthy(false)
	waitFor(t, "all down", func() bool { return !p.Router().IsReady() })
	code, v = health()
	if code != 503 || v["status"] != "unhealthy" {
		t.Fatalf("no endpoint healthy: %d %v", code, v)
	}
	if resp, body := doRequest(t, c, "GET", p.URL+"/health", "", nil); resp.StatusCode != 200 ||
		!strings.Contains(body, `"upstreams":{"a":{"healthy":0,"total":2},"b":{"healthy":0,"total":1}}`) {
		t.Fatalf("/health: %d %s", resp.StatusCode, body)
	}
	// Panic mode: with nothing in rotation requests are still attempted.
	if resp, _ := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil); resp.StatusCode != 200 {
		t.Fatalf("panic mode: %d", resp.StatusCode)
	}
	b.SetHealthy(true)
	waitFor(t, "ready again", func() bool { return p.Router().IsReady() })
}

// TestBackgroundWorkStops checks that health checks and scrapes end with
// Shutdown: no goroutine outlives the server.
func TestBackgroundWorkStops(t *testing.T) {
	ups := startUpstreams(t, 3, proxytest.Options{})
	// Only the proxy's own background goroutines are counted: the whole
	// process's count also moves with goroutines that fasthttp and net/http
	// start once per process or park for seconds (its date updater, idle
	// connection cleaners), which made a total-count check fail when the
	// test ran alone.
	// An earlier test's generation may still be retiring.
	waitFor(t, "no background goroutines before the server exists", func() bool { return backgroundGoroutines() == 0 })
	cfg := NewConfig().WithHostname("127.0.0.1").WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: urlsOf(ups), MetricsPath: "/metrics", ScrapeInterval: Duration(10 * time.Millisecond),
		HealthCheck: &HealthCheckConfig{Interval: Duration(10 * time.Millisecond)},
	})
	srv := newServer(t, cfg, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	waitFor(t, "checks and scrapes running", func() bool {
		return ups[2].HealthChecks() > 1 && ups[2].Scrapes() > 1
	})
	if n := backgroundGoroutines(); n < 6 {
		t.Fatalf("%d background goroutines, want at least 6 (a checker and a scraper per endpoint)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checks, scrapes := ups[2].HealthChecks(), ups[2].Scrapes()
	waitFor(t, "background goroutines gone", func() bool { return backgroundGoroutines() == 0 })
	time.Sleep(50 * time.Millisecond)
	if ups[2].HealthChecks() != checks || ups[2].Scrapes() != scrapes {
		t.Fatal("health checks or scrapes went on after Shutdown")
	}
	_ = srv.Close() // idempotent (newServer closes it again)
}

// backgroundGoroutines counts the goroutines running the proxy's
// background loops: pool health checks and scrapes (package upstream) and
// the disconnect watcher.
func backgroundGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sluice/proxy/upstream.(*Endpoint).") || strings.Contains(g, "sluice/proxy.(*disconnectWatcher).run") {
			n++
		}
	}
	return n
}
