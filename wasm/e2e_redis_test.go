package wasm

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/internal/redistest"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
)

const redisPkg = "wasm/testdata/guests/redis"

// redisSetup is a Host whose redis: list has one entry, "redis.static"
// at addr, with the redis guest loaded (config: cluster name and
// options) and a proxy in front.
type redisSetup struct {
	h *testHost
	p *Plugin
	e *e2e
}

func newRedisSetup(t *testing.T, addr string, timeout time.Duration, config string) *redisSetup {
	t.Helper()
	s := &redisSetup{h: newRedisHost(t, addr, timeout)}
	s.p = loadGo(t, s.h, redisPkg, "redis", config)
	s.e = startProxyWith(t, proxyOptions{sets: []*metrics.Set{s.h.set}}, s.p)
	return s
}

// newRedisHost is a test Host whose redis: list has "redis.static" at addr.
func newRedisHost(t *testing.T, addr string, timeout time.Duration) *testHost {
	t.Helper()
	return newTestHostWith(t, func(c *HostConfig) {
		c.Redis = []proxy.RedisConfig{{Name: "redis.static", Address: addr, Timeout: proxy.Duration(timeout)}}
	})
}

func TestRedisIncrEndToEnd(t *testing.T) {
	rs := redistest.Start(t)
	s := newRedisSetup(t, rs.Addr, 0, "outbound|6379||redis.static")
	if !strings.Contains(s.h.logs.String(), "redis: init err=<nil>") {
		t.Fatalf("proxy_redis_init failed:\n%s", s.h.logs.String())
	}
	for i := 1; i <= 3; i++ {
		r := s.e.do(t, "GET", "/", "", "x-redis-incr", "hits")
		if r.status != 200 || r.body != fmt.Sprint(i) {
			t.Fatalf("INCR #%d = %d %q %v", i, r.status, r.body, r.header)
		}
	}
	if got, err := rs.Do("INCRBY", "hits", "0"); err != nil || got != ":3" {
		t.Fatalf("the server holds %q, %v; want :3", got, err)
	}
	// The reply is passed through as RESP: an error reply, a null, an
	// integer, an array (in this order: LRANGE reads what RPUSH wrote).
	for _, tc := range []struct{ query, want string }{
		{`*2\r\n$4\r\nLPOP\r\n$4\r\nhits\r\n`, "-WRONGTYPE"},
		{`*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n`, "$-1\r\n"},
		{`*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$2\r\nab\r\n`, ":1\r\n"},
		{`*4\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n$1\r\n0\r\n$2\r\n-1\r\n`, "*1\r\n$2\r\nab\r\n"},
	} {
		r := s.e.do(t, "GET", "/", "", "x-redis-raw", tc.query)
		if r.status != 200 || !strings.HasPrefix(r.body, tc.want) {
			t.Errorf("%s = %d %q, want a reply starting %q", tc.query, r.status, r.body, tc.want)
		}
	}
	if m := s.e.metrics(t); !strings.Contains(m, `sluice_plugin_redis_calls_total{plugin="redis",result="ok"} 7`) {
		t.Errorf("metrics lack 7 ok Redis calls:\n%s", testsync.Grep(m, "redis_calls"))
	}
}

func TestRedisCallBadArguments(t *testing.T) {
	// Nothing listens there: every case must fail before a connection.
	s := newRedisSetup(t, "127.0.0.1:1", 0, "redis.static")
	for name, headers := range map[string][]string{
		"unknown cluster":  {"x-redis-incr", "k", "x-redis-cluster", "outbound|6379||nope"},
		"not an array":     {"x-redis-raw", `+PING\r\n`},
		"short bulk":       {"x-redis-raw", `*1\r\n$9\r\nPING\r\n`},
		"two commands":     {"x-redis-raw", `*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n`},
		"refused: SELECT":  {"x-redis-raw", `*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n`},
		"refused: MULTI":   {"x-redis-raw", `*1\r\n$5\r\nmulti\r\n`},
		"refused: MONITOR": {"x-redis-raw", `*1\r\n$7\r\nMONITOR\r\n`},
	} {
		r := s.e.do(t, "GET", "/", "", headers...)
		if r.status != 400 || !strings.Contains(r.header.Get("x-redis-error"), "BAD_ARGUMENT") {
			t.Errorf("%s: %d %v, want 400 with bad argument", name, r.status, r.header)
		}
	}
	if n := s.p.calloutsInFlight(); n != 0 {
		t.Errorf("%d calls in flight after refused calls", n)
	}
}

func TestRedisInitUnknownCluster(t *testing.T) {
	h := newRedisHost(t, "127.0.0.1:1", 0)
	loadGo(t, h, redisPkg, "redis", "outbound|6379||other.static")
	if !strings.Contains(h.logs.String(), "redis: init err=sdk: proxy_redis_init: BAD_ARGUMENT") {
		t.Fatalf("proxy_redis_init of an unknown cluster did not fail:\n%s", h.logs.String())
	}
}

// TestRedisUnavailable: a Redis that refuses connections, one that never
// answers and one that is killed and restarted all give the plugin a
// failure status within the timeout; no request hangs.
func TestRedisUnavailable(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		s := newRedisSetup(t, testsync.ClosedAddr(t), 0, "redis.static")
		r := s.e.do(t, "GET", "/", "", "x-redis-incr", "k")
		if r.status != 503 || r.header.Get("x-redis-status") != "1" {
			t.Fatalf("got %d %v, want 503 with status 1", r.status, r.header)
		}
	})
	t.Run("silent", func(t *testing.T) {
		addr := silentServer(t)
		// The configured timeout is 5 s; the plugin asks for 300 ms.
		s := newRedisSetup(t, addr, 5*time.Second, "redis.static,timeout=300")
		start := time.Now()
		r := s.e.do(t, "GET", "/", "", "x-redis-incr", "k")
		if r.status != 503 || r.header.Get("x-redis-status") != "2" || r.header.Get("x-redis-message") != "timeout" {
			t.Fatalf("got %d %v, want 503 with status 2 and message timeout", r.status, r.header)
		}
		// 300 ms by design; 3 s is the bound for a starved machine, still
		// below the 5 s configured timeout and the proxy's 5 s pause limit.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the failure took %v", d)
		}
		testsync.WaitFor(t, 3*time.Second, "no call in flight", func() bool { return s.p.calloutsInFlight() == 0 })
	})
	t.Run("killed and restarted", func(t *testing.T) {
		rs := redistest.Start(t)
		s := newRedisSetup(t, rs.Addr, 0, "redis.static")
		if r := s.e.do(t, "GET", "/", "", "x-redis-incr", "k"); r.body != "1" {
			t.Fatalf("first INCR = %d %q", r.status, r.body)
		}
		rs.Kill()
		if r := s.e.do(t, "GET", "/", "", "x-redis-incr", "k"); r.status != 503 || r.header.Get("x-redis-status") == "0" {
			t.Fatalf("INCR with Redis gone = %d %v", r.status, r.header)
		}
		rs.Restart()
		// The pool's broken connections are replaced on the next calls.
		testsync.WaitFor(t, 5*time.Second, "INCR after the restart", func() bool {
			return s.e.do(t, "GET", "/", "", "x-redis-incr", "k").body == "1"
		})
	})
}

// TestRedisCallsHammer: concurrent INCRs from requests on two instances
// each get a distinct value, the server ends at their count and no call is
// left in flight.
func TestRedisCallsHammer(t *testing.T) {
	rs := redistest.Start(t)
	s := newRedisSetup(t, rs.Addr, 0, "redis.static")
	const workers, each = 8, 20
	var seen testsync.Distinct
	errs := testsync.Hammer(workers, each, func(int, int) error {
		req, _ := http.NewRequest("GET", s.e.base+"/", nil)
		req.Header.Set("x-redis-incr", "hammer")
		resp, err := s.e.cli.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if dup := seen.Add(string(b)); resp.StatusCode != 200 || dup {
			return fmt.Errorf("%d %q (duplicate %v)", resp.StatusCode, b, dup)
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	if got, err := rs.Do("INCRBY", "hammer", "0"); err != nil || got != fmt.Sprintf(":%d", workers*each) {
		t.Fatalf("the server holds %q, %v; want :%d", got, err, workers*each)
	}
	testsync.WaitFor(t, 3*time.Second, "no call in flight", func() bool { return s.p.calloutsInFlight() == 0 })
}

// TestRedisCallsCancelledOnClose: closing the plugin while a call waits on
// a silent Redis cancels the call at once (it does not wait for the 10 s
// timeout) and counts it as cancelled.
func TestRedisCallsCancelledOnClose(t *testing.T) {
	s := newRedisSetup(t, silentServer(t), 10*time.Second, "redis.static")
	go func() {
		req, _ := http.NewRequest("GET", s.e.base+"/", nil)
		req.Header.Set("x-redis-incr", "k")
		if resp, err := s.e.cli.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testsync.WaitFor(t, 5*time.Second, "a call in flight", func() bool { return s.p.calloutsInFlight() == 1 })
	start := time.Now()
	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	// Immediate by design; 5 s is half the call's timeout.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if got := s.h.metric(`sluice_plugin_redis_calls_total{plugin="redis",result="cancelled"}`); got != "1" {
		t.Errorf("cancelled calls = %q, want 1", got)
	}
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestUpstreamHostsPickEndpoint: a guest reads proxy_get_upstream_hosts
// (each endpoint with its scraped metrics) and overrides the request to
// the endpoint with the shortest queue.
func TestUpstreamHostsPickEndpoint(t *testing.T) {
	engine := func(name string, waiting int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				fmt.Fprintf(w, "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} %d\n", waiting)
				return
			}
			w.Header().Set("x-upstream-name", name)
			for _, h := range []string{"x-picked", "x-hosts", "x-override-err"} {
				w.Header().Set("x-seen-"+h, r.Header.Get(h))
			}
			io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	busy, idle := engine("busy", 7), engine("idle", 0)
	h := newTestHost(t)
	p := loadGo(t, h, redisPkg, "redis", "none")
	cfg := proxy.NewConfig().WithHostname("127.0.0.1").WithTimeout(5 * time.Second)
	cfg.Upstreams = []proxy.UpstreamConfig{{
		Name: "llm", Endpoints: []string{busy.URL, idle.URL},
		MetricsPath: "/metrics", ScrapeInterval: proxy.Duration(50 * time.Millisecond),
	}}
	_, base := plugintest.Serve(t, cfg, proxy.Options{Filters: []proxy.Filter{p}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e := &e2e{base: base, cli: &http.Client{Timeout: 10 * time.Second}}
	idleAddr := strings.TrimPrefix(idle.URL, "http://")
	var last reply
	testsync.WaitFor(t, 5*time.Second, "the guest picks the idle endpoint", func() bool {
		last = e.do(t, "GET", "/x", "", "x-pick-endpoint", "1")
		return last.header.Get("x-upstream-name") == "idle"
	})
	if last.status != 200 || last.header.Get("x-seen-x-picked") != idleAddr || last.header.Get("x-seen-x-hosts") != "2" {
		t.Fatalf("got %d %q %v, want idle (%s) picked among 2", last.status, last.body, last.header, idleAddr)
	}
	// An address outside the pool is refused and changes nothing.
	r := e.do(t, "GET", "/x", "", "x-override", "127.0.0.1:1")
	if r.status != 200 || !strings.HasSuffix(r.header.Get("x-seen-x-override-err"), "BAD_ARGUMENT") {
		t.Fatalf("override to an unknown endpoint: %d %q %v", r.status, r.body, r.header)
	}
	r = e.do(t, "GET", "/x", "", "x-override", idleAddr)
	if r.header.Get("x-upstream-name") != "idle" || r.header.Get("x-seen-x-override-err") != "<nil>" {
		t.Fatalf("override to idle: %d %q %v", r.status, r.body, r.header)
	}
	r = e.do(t, "GET", "/x", "", "x-inject", "1")
	if !strings.HasSuffix(r.body, "proxy_inject_encoded_data_to_filter_chain: UNIMPLEMENTED") {
		t.Fatalf("inject = %q, want UNIMPLEMENTED", r.body)
	}
}
