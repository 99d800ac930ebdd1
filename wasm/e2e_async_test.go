package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
)

const asyncPkg = "wasm/testdata/guests/async"

// calloutServer is an upstream for HTTP calls. It answers
// "<name> <method> <path> <host> <body>" with x-upstream-name and a
// trailer x-trailer: t-<name>. Path /slow waits until the caller goes away
// (at most 10 s) and counts the cancellations; path /barrier answers only
// once two /barrier requests are in flight across every calloutServer
// sharing the barrier (500 after 5 s).
type calloutServer struct {
	*httptest.Server
	started   atomic.Int32 // /slow requests received
	cancelled atomic.Int32 // /slow requests whose caller went away
}

// barrier is a two-party rendezvous shared by calloutServers.
type barrier struct {
	mu      sync.Mutex
	arrived int
	ch      chan struct{}
}

func newBarrier() *barrier { return &barrier{ch: make(chan struct{})} }

func (b *barrier) wait(d time.Duration) bool {
	b.mu.Lock()
	b.arrived++
	if b.arrived == 2 {
		close(b.ch)
	}
	b.mu.Unlock()
	select {
	case <-b.ch:
		return true
	case <-time.After(d):
		return false
	}
}

func newCalloutServer(t testing.TB, name string, bar *barrier) *calloutServer {
	t.Helper()
	cs := &calloutServer{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/slow":
			cs.started.Add(1)
			select {
			case <-r.Context().Done():
				cs.cancelled.Add(1)
			case <-time.After(10 * time.Second):
			}
			return
		case "/barrier":
			if bar == nil || !bar.wait(5*time.Second) {
				http.Error(w, "the other call never came", 500)
				return
			}
		}
		w.Header().Set("Trailer", "x-trailer")
		w.Header().Set("x-upstream-name", name)
		fmt.Fprintf(w, "%s %s %s %s %s", name, r.Method, r.URL.RequestURI(), r.Host, body)
		w.Header().Set("x-trailer", "t-"+name)
	}))
	t.Cleanup(cs.Close)
	return cs
}

// asyncSetup is a Host whose callouts reach pools "auth" and "auth2" (two
// calloutServers sharing a barrier) and "slow", with the async guest
// loaded and a proxy in front.
type asyncSetup struct {
	h          *testHost
	p          *Plugin
	e          *e2e
	auth, slow *calloutServer
}

func newAsyncSetup(t *testing.T, config string, instances int, o proxyOptions) *asyncSetup {
	t.Helper()
	bar := newBarrier()
	s := &asyncSetup{auth: newCalloutServer(t, "auth", bar), slow: newCalloutServer(t, "slow", nil)}
	auth2 := newCalloutServer(t, "auth2", bar)
	s.h = newTestHostWith(t, func(c *HostConfig) {
		c.Upstreams = resolvedPools(t,
			proxy.UpstreamConfig{Name: "auth", Endpoints: []string{s.auth.URL}},
			proxy.UpstreamConfig{Name: "auth2", Endpoints: []string{auth2.URL}},
			proxy.UpstreamConfig{Name: "slow", Endpoints: []string{s.slow.URL}},
		)
	})
	s.p = loadGo(t, s.h, asyncPkg, "async", config, func(pc *proxy.PluginConfig) { pc.Instances = instances })
	o.sets = append(o.sets, s.h.set)
	s.e = startProxyWith(t, o, s.p)
	return s
}

func (s *asyncSetup) shared(t *testing.T, key string) string {
	t.Helper()
	return s.e.do(t, "GET", "/get", "", "x-async-shared-get", key).header.Get("x-shared")
}

func TestE2ESharedDataCounter(t *testing.T) {
	s := newAsyncSetup(t, "", 2, proxyOptions{})
	if r := s.e.do(t, "GET", "/c", "", "x-async-counter", "hits"); r.header.Get("x-counter") != "1" {
		t.Fatalf("first increment: %d %v", r.status, r.header)
	}
	const workers, perWorker = 8, 20
	var mu sync.Mutex
	tokens := map[string]int{}
	retries := 0
	var seen testsync.Distinct
	errs := testsync.Hammer(workers, perWorker, func(int, int) error {
		r := s.e.do(t, "GET", "/c", "", "x-async-counter", "hits")
		v := r.header.Get("x-counter")
		n, _ := strconv.Atoi(r.header.Get("x-counter-retries"))
		mu.Lock()
		tokens[r.header.Get("x-token")]++
		retries += n
		mu.Unlock()
		if dup := seen.Add(v); r.status != 200 || dup {
			return fmt.Errorf("status %d, x-counter %q (duplicate %v)", r.status, v, dup)
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	want := strconv.Itoa(1 + workers*perWorker)
	if got := s.shared(t, "hits"); got != want {
		t.Errorf("hits = %q, want %s (lost updates)", got, want)
	}
	if len(tokens) != 2 {
		t.Errorf("requests landed on instances %v, want both", tokens)
	}
	t.Logf("CAS retries: %d", retries)
}

func TestE2ETicks(t *testing.T) {
	const period = 20 * time.Millisecond
	s := newAsyncSetup(t, "tick=20", 2, proxyOptions{})
	// Paused requests on both instances are resumed by ticks. The first
	// one runs alone: it creates the shared counter, whose first write is
	// unconditional in the ABI (two concurrent creators would both win).
	pausedRequest := func(i int) {
		r := s.e.do(t, "GET", "/p", "", "x-async-pause", "1", "x-async-counter", "paused")
		if r.status != 200 || r.header.Get("x-upstream-name") != "a" {
			t.Errorf("paused request %d: %d %q", i, r.status, r.body)
		}
	}
	pausedRequest(0)
	var wg sync.WaitGroup
	for i := 1; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pausedRequest(i)
		}()
	}
	wg.Wait()
	if got := s.shared(t, "paused"); got != "6" {
		t.Errorf("paused = %q", got)
	}
	// One tick per period for the plugin, not one per instance.
	ticks := func() int {
		n, _ := strconv.Atoi(s.shared(t, "ticks"))
		return n
	}
	t0 := time.Now() // both reads happen within [t0, t1]
	n0 := ticks()
	time.Sleep(30 * period)
	n1 := ticks()
	t1 := time.Now()
	maxTicks := int(t1.Sub(t0)/period) + 2
	if d := n1 - n0; d < 3 || d > maxTicks {
		t.Errorf("%d ticks in %v with period %v: want one per period for the plugin (at most %d)", d, t1.Sub(t0), period, maxTicks)
	}
	waitFor(t, "both instances to tick", func() bool { return len(strings.Fields(s.shared(t, "tickers"))) == 2 })
}

func TestE2ETickPeriodZeroStops(t *testing.T) {
	s := newAsyncSetup(t, "tick=10", 1, proxyOptions{})
	waitFor(t, "a tick", func() bool { return s.shared(t, "ticks") != "" })
	if r := s.e.do(t, "GET", "/t", "", "x-async-tick", "0"); r.header.Get("x-tick") != "ok" {
		t.Fatalf("x-tick = %q", r.header.Get("x-tick"))
	}
	n0 := s.shared(t, "ticks")
	time.Sleep(100 * time.Millisecond)
	if n1 := s.shared(t, "ticks"); n1 != n0 {
		t.Fatalf("ticks went on after period 0: %s then %s", n0, n1)
	}
	s.e.do(t, "GET", "/t", "", "x-async-tick", "10")
	waitFor(t, "ticks to resume", func() bool { return s.shared(t, "ticks") != n0 })
}

func TestE2ECallouts(t *testing.T) {
	s := newAsyncSetup(t, "", 2, proxyOptions{})
	t.Run("two in flight", func(t *testing.T) {
		r := s.e.do(t, "GET", "/x", "", "x-async-callout", "auth,auth2", "x-async-callout-path", "/barrier")
		if r.status != 200 || r.header.Get("x-upstream-name") != "a" {
			t.Fatalf("status %d from %q: %q", r.status, r.header.Get("x-upstream-name"), r.body)
		}
		for i, name := range []string{"auth", "auth2"} {
			got := r.header.Get("x-callout-" + strconv.Itoa(i))
			for _, w := range []string{
				name + " n=", " status=200 msg=OK st=0 trailers=1", " :status=200", " x-upstream-name=" + name,
				" body=" + name + " POST /barrier callout.test call " + strconv.Itoa(i), " trailer:x-trailer=t-" + name,
			} {
				if !strings.Contains(got, w) {
					t.Errorf("x-callout-%d = %q, lacks %q", i, got, w)
				}
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		before := s.slow.cancelled.Load()
		start := time.Now()
		r := s.e.do(t, "GET", "/x", "", "x-async-callout", "slow", "x-async-callout-path", "/slow", "x-async-callout-timeout", "100")
		if r.status != 200 || time.Since(start) > 3*time.Second {
			t.Fatalf("status %d after %v", r.status, time.Since(start))
		}
		if got := r.header.Get("x-callout-0"); got != "slow n=0 status=0 msg=timeout st=0 trailers=0" {
			t.Errorf("x-callout-0 = %q", got)
		}
		waitFor(t, "the slow call to be cancelled", func() bool { return s.slow.cancelled.Load() > before })
	})
	t.Run("unknown pool", func(t *testing.T) {
		r := s.e.do(t, "GET", "/x", "", "x-async-callout", "nope")
		if r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
		if got := r.header.Get("x-callout-0"); got != "nope dispatch: sdk: proxy_http_call: BAD_ARGUMENT" {
			t.Errorf("x-callout-0 = %q", got)
		}
	})
	if got := s.h.metric(`sluice_plugin_http_calls_total{plugin="async",result="ok"}`); got != "2" {
		t.Errorf("ok calls = %s", got)
	}
	if got := s.h.metric(`sluice_plugin_http_calls_total{plugin="async",result="timeout"}`); got != "1" {
		t.Errorf("timed-out calls = %s", got)
	}
	if n := s.p.calloutsInFlight(); n != 0 {
		t.Errorf("%d calls still in flight", n)
	}
}

// TestE2ECalloutRequestGone: the client goes away while the request waits
// for a slow call, the proxy gives up on the pause, and the call is
// cancelled; its failure callback finds the request gone.
func TestE2ECalloutRequestGone(t *testing.T) {
	s := newAsyncSetup(t, "", 1, proxyOptions{timeout: 400 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.e.base+"/gone", nil)
	req.Header.Set("x-async-callout", "slow")
	req.Header.Set("x-async-callout-path", "/slow")
	if resp, err := s.e.cli.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered (%d) before the client gave up", resp.StatusCode)
	}
	waitFor(t, "the call to be cancelled", func() bool { return s.slow.cancelled.Load() == 1 })
	waitFor(t, "no call in flight", func() bool { return s.p.calloutsInFlight() == 0 })
	waitFor(t, "the call's goroutine to end", func() bool { return goroutinesIn("wasm.(*instance).runCallout") == 0 })
	waitFor(t, "the failure callback", func() bool {
		return strings.Contains(s.h.logs.String(), "gone before its replies")
	})
	if got := s.h.metric(`sluice_plugin_http_calls_total{plugin="async",result="cancelled"}`); got != "1" {
		t.Errorf("cancelled calls = %s", got)
	}
	// The instance is fine.
	if r := s.e.do(t, "GET", "/after", "", "x-async-counter", "after"); r.status != 200 || r.header.Get("x-counter") != "1" {
		t.Fatalf("after: %d %v", r.status, r.header)
	}
	if s.p.liveInstances() != 1 {
		t.Error("the instance was discarded")
	}
}

// goroutinesIn counts the goroutines whose stack contains fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

func TestE2EPluginMetrics(t *testing.T) {
	s := newAsyncSetup(t, "", 2, proxyOptions{})
	for i := 1; i <= 3; i++ {
		r := s.e.do(t, "GET", "/m", "", "x-async-metric", "1", "x-async-metric-value", "abcd")
		if got := r.header.Get("x-metric-counter"); got != strconv.Itoa(i) {
			t.Errorf("request %d: x-metric-counter = %q (the instances must share the counter)", i, got)
		}
		if got := r.header.Get("x-metric-gauge"); got != "1" {
			t.Errorf("request %d: x-metric-gauge = %q", i, got)
		}
	}
	m := s.e.metrics(t)
	for _, w := range []string{
		`sluice_wasm_custom_header_value_counts{plugin="async",reporter="wasmgosdk",value="foo"} 3`,
		`sluice_wasm_async_inflight{plugin="async"} 0`,
		`sluice_wasm_async_body_bytes_sum{plugin="async"} 12`,
		`sluice_wasm_async_body_bytes_count{plugin="async"} 3`,
	} {
		if !strings.Contains(m, w+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", w, testsync.Grep(m, "sluice_wasm_"))
		}
	}
	logs := s.h.logs.String()
	for _, w := range []string{
		`async: define again type=0 id={1} err=<nil>`,
		`async: define \"\" type=0 err=sdk: proxy_define_metric: BAD_ARGUMENT`,
		`async: define \"!!!\" type=0 err=sdk: proxy_define_metric: BAD_ARGUMENT`,
		`async: define \"a_plugin=x\" type=0 err=sdk: proxy_define_metric: BAD_ARGUMENT`,
		`async: define \"a_b=1_b=2\" type=0 err=sdk: proxy_define_metric: BAD_ARGUMENT`,
		`async: define counter-as-gauge err=sdk: proxy_define_metric: BAD_ARGUMENT`,
	} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %s", w)
		}
	}
	if !strings.Contains(logs, `async: define \"xxxxxxxxxxxxxxxxxxxxxxxx`) || strings.Count(logs, "type=0 err=sdk: proxy_define_metric: BAD_ARGUMENT") < 2*5 {
		t.Errorf("the over-long name was not refused on both instances:\n%s", testsync.Grep(logs, "async: define"))
	}
}

func TestE2ESharedQueue(t *testing.T) {
	s := newAsyncSetup(t, "queue=jobs", 2, proxyOptions{})
	items := []string{"one", "two", "three", "four"}
	for _, it := range items {
		if r := s.e.do(t, "GET", "/q", "", "x-async-enqueue", it, "x-async-queue", "jobs"); r.header.Get("x-enqueue") != "ok" {
			t.Fatalf("enqueue %s: %q", it, r.header.Get("x-enqueue"))
		}
	}
	var got string
	waitFor(t, "every item dequeued", func() bool {
		got = s.shared(t, "dequeued")
		return len(strings.Fields(got)) == len(items)
	})
	token := ""
	for i, f := range strings.Fields(got) {
		item, tok, _ := strings.Cut(f, "@")
		if item != items[i] {
			t.Errorf("dequeued %q, want %v in order", got, items)
		}
		if token != "" && tok != token {
			t.Errorf("dequeued on several instances: %q", got)
		}
		token = tok
	}
	r := s.e.do(t, "GET", "/q", "", "x-async-enqueue", "x", "x-async-queue", "nope")
	if got := r.header.Get("x-enqueue"); got != "sdk: proxy_resolve_shared_queue: NOT_FOUND" {
		t.Errorf("unknown queue: %q", got)
	}
}

func TestE2EForeignFunctions(t *testing.T) {
	s := newAsyncSetup(t, "", 1, proxyOptions{})
	ffi := func(name, arg string) string {
		return s.e.do(t, "GET", "/f", "", "x-async-ffi", name, "x-async-ffi-arg", arg).header.Get("x-ffi")
	}
	sum := sha256.Sum256([]byte("abc"))
	if got := ffi("sluice.sha256", "abc"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("sluice.sha256 = %q", got)
	}
	raw, err := hex.DecodeString(ffi("sluice.now_unix_nano", ""))
	if err != nil || len(raw) != 8 {
		t.Fatalf("sluice.now_unix_nano = %x, %v", raw, err)
	}
	if d := time.Since(time.Unix(0, int64(binary.LittleEndian.Uint64(raw)))); d < 0 || d > time.Minute {
		t.Errorf("sluice.now_unix_nano is %v off", d)
	}
	js, _ := hex.DecodeString(ffi("sluice.upstream_stats", ""))
	if !strings.HasPrefix(string(js), `{"pools":{"a":{`) {
		t.Errorf("sluice.upstream_stats = %q", js)
	}
	// sluice.upstream_loads: the pool's name, then its endpoints
	// (proxy's TestAppendPoolLoads has the form).
	if loads, _ := hex.DecodeString(ffi("sluice.upstream_loads", "a")); len(loads) < 5+4+16 || string(loads[:5]) != "\x01\x00\x00\x00a" {
		t.Errorf("sluice.upstream_loads(a) = %q", loads)
	}
	if got := ffi("sluice.upstream_loads", strings.Repeat("p", maxPoolNameArg+1)); got != "sdk: proxy_call_foreign_function: BAD_ARGUMENT" {
		t.Errorf("upstream_loads of a %d-byte name: %q", maxPoolNameArg+1, got)
	}
	// sluice.endpoint_loads: the same with a field count (proxy's
	// TestAppendEndpointLoads).
	if loads, _ := hex.DecodeString(ffi("sluice.endpoint_loads", "a")); len(loads) < 5+4+4+24 || string(loads[:9]) != "\x01\x00\x00\x00a\x03\x00\x00\x00" {
		t.Errorf("sluice.endpoint_loads(a) = %q", loads)
	}
	if got := ffi("sluice.now_unix_nano", "x"); got != "sdk: proxy_call_foreign_function: BAD_ARGUMENT" {
		t.Errorf("arguments to now_unix_nano: %q", got)
	}
	// sluice.prompt_block_hashes from a Go guest: arguments that are not
	// two u32s, or a chunk size out of range, are refused; on GET (no
	// body) no prompt is found (foreign_prompt_test.go has the rest).
	for _, arg := range []string{"x", "AAAAAAAA", "AAAAAAAAA"} {
		if got := ffi("sluice.prompt_block_hashes", arg); got != "sdk: proxy_call_foreign_function: BAD_ARGUMENT" {
			t.Errorf("prompt_block_hashes(%q): %q", arg, got)
		}
	}
	if got := ffi("nope", ""); got != "sdk: proxy_call_foreign_function: NOT_FOUND" {
		t.Errorf("unknown function: %q", got)
	}
}

// TestSharedDataByVMID: plugins with the same vm_id share one store;
// another vm_id (the default is the plugin's name) has its own.
func TestSharedDataByVMID(t *testing.T) {
	h := newTestHost(t)
	load := func(name, vmID string) *Plugin {
		pc := fixtureConfig(t, "ok")
		pc.Name, pc.VMID = name, vmID
		return h.mustLoad(t, pc)
	}
	a, b, c := load("a", "shared"), load("b", "shared"), load("c", "")
	if a.shared != b.shared || a.shared == c.shared {
		t.Fatal("shared data is not keyed by vm_id")
	}
}

// TestE2ETickAfterReplacement: the instance that replaces a discarded one
// gets the ticks its start-up asked for (the probe resumes paused requests
// from proxy_on_tick).
func TestE2ETickAfterReplacement(t *testing.T) {
	h := newTestHost(t)
	p := loadGo(t, h, probePkg, "probe", "", func(pc *proxy.PluginConfig) { pc.Instances = 1 })
	e := startProxy(t, p)
	if r := e.do(t, "GET", "/x", "", "x-probe-panic", "request_headers"); r.status != 503 {
		t.Fatalf("panic: status %d", r.status)
	}
	waitFor(t, "the replacement", func() bool {
		return p.liveInstances() == 1 && h.metric(`sluice_plugin_instance_restarts_total{plugin="probe"}`) == "1"
	})
	if r := e.do(t, "GET", "/x", "", "x-probe-pause", "1", "x-probe-echo", "resumed"); r.status != 200 || r.header.Get("x-echo") != "resumed" {
		t.Fatalf("paused request on the new instance: %d %q", r.status, r.body)
	}
}
