package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/internal/traceparent"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// accessLog is a proxy's log in text or JSON, read back as access lines.
type accessLog struct {
	buf  testsync.LogBuffer
	json bool
}

// loggedProxy starts a proxy for cfg that logs into the returned
// accessLog, in JSON or text.
func loggedProxy(t *testing.T, cfg *Config, opts Options, asJSON bool) (*testProxy, *accessLog) {
	t.Helper()
	l := &accessLog{json: asJSON}
	if asJSON {
		opts.Logger = slog.New(slog.NewJSONHandler(&l.buf, nil))
	} else {
		opts.Logger = slog.New(slog.NewTextHandler(&l.buf, nil))
	}
	return startProxy(t, cfg, opts), l
}

var textAttr = regexp.MustCompile(`([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)

// lines returns the access lines so far, each as key → value. JSON values
// keep their JSON text ("200", "true", `"abc"` unquoted to abc) so the two
// formats compare alike; a JSON number is marked by a "#type" entry.
func (l *accessLog) lines(t *testing.T) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if line == "" {
			continue
		}
		m := map[string]string{}
		if l.json {
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &raw); err != nil {
				t.Fatalf("log line is not JSON: %v: %s", err, line)
			}
			for k, v := range raw {
				var s string
				if json.Unmarshal(v, &s) == nil {
					m[k] = s
				} else {
					m[k] = string(v)
					m["#type "+k] = "json"
				}
			}
		} else {
			for _, a := range textAttr.FindAllStringSubmatch(line, -1) {
				v := a[2]
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				m[a[1]] = v
			}
		}
		if m["msg"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

// line waits for the access line with request_id id.
func (l *accessLog) line(t *testing.T, id string) map[string]string {
	t.Helper()
	var found map[string]string
	waitFor(t, "access line of request "+id, func() bool {
		for _, m := range l.lines(t) {
			if m["request_id"] == id {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// checkFields asserts each key has the wanted value ("*" any non-empty
// value, "-" absent), and that numeric fields are JSON numbers.
func (l *accessLog) checkFields(t *testing.T, m map[string]string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		got, ok := m[k]
		switch {
		case w == "-" && ok:
			t.Errorf("%s = %q, want absent", k, got)
		case w == "*" && got == "":
			t.Errorf("%s missing", k)
		case w != "-" && w != "*" && got != w:
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
	if l.json {
		for _, k := range []string{"status", "duration_ms", "bytes_in", "bytes_out", "attempts", "prompt_tokens", "completion_tokens", "ttft_ms", "ok"} {
			if _, ok := m[k]; ok && m["#type "+k] != "json" {
				t.Errorf("%s is a JSON string, want a number or boolean", k)
			}
		}
	}
	if t.Failed() {
		t.Logf("line: %v", m)
	}
}

// positiveMillis asserts that key is a duration in milliseconds, > 0 and
// below bound (a sanity bound: not nanoseconds, not seconds).
func positiveMillis(t *testing.T, m map[string]string, key string, bound float64) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(m[key], 64)
	if err != nil || v <= 0 || v > bound {
		t.Fatalf("%s = %q, want milliseconds in (0, %v]", key, m[key], bound)
	}
	return v
}

const (
	clientTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientTraceparent = "00-" + clientTraceID + "-00f067aa0ba902b7-01"
)

// TestAccessLogProxied: a proxied request's line has every field, in both
// formats, with units in the keys; the upstream receives the client's
// request id and trace context unchanged.
func TestAccessLogProxied(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		name := map[bool]string{false: "text", true: "json"}[asJSON]
		t.Run(name, func(t *testing.T) {
			up := startUpstream(t, proxytest.Options{Tokens: 5, TokenDelay: 2 * time.Millisecond})
			p, logs := loggedProxy(t, baseConfig(up.URL), Options{}, asJSON)
			body := `{"model":"m","messages":[{"role":"user","content":"one two three"}]}`
			resp, respBody := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions?x=1", body,
				map[string]string{"X-Request-Id": "client-req-1", "Traceparent": clientTraceparent, "Tracestate": "congo=t61rcWkgMzE"})
			if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "client-req-1" {
				t.Fatalf("status %d, x-request-id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
			}
			got := up.LastRequest()
			if got.Header.Get("Traceparent") != clientTraceparent || got.Header.Get("Tracestate") != "congo=t61rcWkgMzE" {
				t.Fatalf("upstream got traceparent %q tracestate %q", got.Header.Get("Traceparent"), got.Header.Get("Tracestate"))
			}
			m := logs.line(t, "client-req-1")
			logs.checkFields(t, m, map[string]string{
				"level": "INFO", "trace_id": clientTraceID, "method": "POST",
				"path": "/v1/chat/completions?x=1", "status": "200", "ok": "true",
				"bytes_in": strconv.Itoa(len(body)), "bytes_out": strconv.Itoa(len(respBody)),
				"upstream": "default", "endpoint": up.Addr, "attempts": "1", "model": "m",
				"prompt_tokens": "3", "completion_tokens": "5", "ttft_ms": "-", "error": "-",
				"duration": "-",
			})
			if host, _, err := net.SplitHostPort(m["client_addr"]); err != nil || host != "127.0.0.1" {
				t.Errorf("client_addr = %q, want 127.0.0.1:port", m["client_addr"])
			}
			// 5 tokens 2ms apart: at least 10ms; never 10s.
			if d := positiveMillis(t, m, "duration_ms", 10_000); d < 10 {
				t.Errorf("duration_ms = %v, want >= 10 (5 tokens paced 2ms apart)", d)
			}

			// A stream: time to first token, usage from the last chunk,
			// bytes as streamed.
			req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(streamUsageBody))
			req.Header.Set("X-Request-Id", "client-req-2")
			sresp, err := newClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := io.ReadAll(sresp.Body)
			sresp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			m = logs.line(t, "client-req-2")
			logs.checkFields(t, m, map[string]string{
				"status": "200", "bytes_in": strconv.Itoa(len(streamUsageBody)),
				"bytes_out": strconv.Itoa(len(streamed)), "prompt_tokens": "3", "completion_tokens": "5",
				"trace_id": "*",
			})
			ttft := positiveMillis(t, m, "ttft_ms", 10_000)
			if d := positiveMillis(t, m, "duration_ms", 10_000); ttft > d {
				t.Errorf("ttft_ms %v > duration_ms %v", ttft, d)
			}
		})
	}
}

// rejection is one way of making the proxy refuse a request.
type rejection struct {
	name   string
	status int
	cfg    func(*Config, string) *Config // the upstream's URL
	opts   Options
	before func(*testing.T, *testProxy) func() // returns the undo
	raw    string                              // the request, sent on a raw connection
	fields map[string]string                   // more fields the line must have
}

// TestAccessLogRejections: every refusal — before a slot, at admission,
// by a plugin, by the upstream, and for a head fasthttp could not read —
// answers with an x-request-id (the client's when it sent a valid one)
// and logs a line with that id, the status and the client's address.
func TestAccessLogRejections(t *testing.T) {
	same := func(c *Config, _ string) *Config { return c }
	deny := &funcFilter{name: "deny", onReqHdr: func(ex *Exchange) (Action, error) {
		ex.SendLocalResponse(403, "denied", nil, []byte(`{"error":"no"}`))
		return ActionPause, nil
	}}
	post := func(headers string, body int) string {
		return "POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: rej-1\r\nTraceparent: " + clientTraceparent +
			"\r\n" + headers + "Content-Length: " + strconv.Itoa(body) + "\r\n\r\n" + strings.Repeat("a", min(body, 9000))
	}
	get := "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Request-Id: rej-1\r\nTraceparent: " + clientTraceparent + "\r\n\r\n"
	cases := []rejection{
		{name: "429 slots full", status: 429, cfg: func(c *Config, _ string) *Config { return c.WithMaxConcurrentRequests(1) },
			before: func(t *testing.T, p *testProxy) func() {
				g, err := p.Router().TryAcquire()
				if err != nil {
					t.Fatal(err)
				}
				return g.Release
			},
			raw: get, fields: map[string]string{"ok": "false"}},
		{name: "413 body too large", status: 413, cfg: func(c *Config, _ string) *Config { return c.WithMaxRequestBodySize(64 << 10) },
			raw: post("", 100000)},
		{name: "408 body too slow", status: 408, cfg: func(c *Config, _ string) *Config { return c.WithClientBodyTimeout(500 * time.Millisecond) },
			raw: post("", 10000), fields: map[string]string{"bytes_in": "9000"}},
		{name: "404 no route", status: 404, cfg: func(c *Config, _ string) *Config {
			return c.WithRoute(RouteMatch{PathPrefix: "/only"}, "default")
		}, raw: get},
		{name: "403 plugin", status: 403, cfg: same, opts: Options{Filters: []Filter{deny}}, raw: get},
		{name: "502 upstream down", status: 502, cfg: func(_ *Config, _ string) *Config { return baseConfig("http://" + testsync.ClosedAddr(t)) },
			raw: get, fields: map[string]string{"upstream": "default", "endpoint": "*", "attempts": "*", "error": "*"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, proxytest.Options{})
			p, logs := loggedProxy(t, tc.cfg(baseConfig(up.URL), up.URL), tc.opts, true)
			if tc.before != nil {
				defer tc.before(t, p)()
			}
			resp := rawExchange(t, p.Addr, tc.raw)
			if resp.StatusCode != tc.status || resp.Header.Get("X-Request-Id") != "rej-1" {
				t.Fatalf("status %d, x-request-id %q; want %d, rej-1", resp.StatusCode, resp.Header.Get("X-Request-Id"), tc.status)
			}
			want := map[string]string{"status": strconv.Itoa(tc.status), "trace_id": clientTraceID,
				"client_addr": "*", "duration_ms": "*", "bytes_out": "*"}
			for k, v := range tc.fields {
				want[k] = v
			}
			logs.checkFields(t, logs.line(t, "rej-1"), want)
		})
	}

	// Heads fasthttp cannot read: a new id (the request was never read),
	// no trace id.
	for _, tc := range []struct {
		name   string
		status int
		code   string
		raw    string
	}{
		{"431 head too large", 431, "request_header_too_large", "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Request-Id: rej-1\r\nX-Big: " + strings.Repeat("b", 70<<10) + "\r\n\r\n"},
		{"414 line too long", 414, "uri_too_long", "GET /" + strings.Repeat("b", 70<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"400 ambiguous framing", 400, "bad_request", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, proxytest.Options{})
			p, logs := loggedProxy(t, baseConfig(up.URL), Options{}, true)
			resp := rawExchange(t, p.Addr, tc.raw)
			id := resp.Header.Get("X-Request-Id")
			if resp.StatusCode != tc.status || len(id) != 32 {
				t.Fatalf("status %d, x-request-id %q; want %d and a generated id", resp.StatusCode, id, tc.status)
			}
			logs.checkFields(t, logs.line(t, id), map[string]string{"status": strconv.Itoa(tc.status), "client_addr": "*",
				"trace_id": "-", "duration_ms": "0", "error": tc.code, "ok": "false", "method": "", "path": ""})
		})
	}
}

// TestAccessLogClientGone: the 499 of a client that left while the
// upstream was still thinking has its request and trace ids.
func TestAccessLogClientGone(t *testing.T) {
	skipUnwatched(t)
	up := startHoldUpstream(t)
	logs := &accessLog{json: true}
	p := startProxy(t, baseConfig(up.URL), Options{Logger: slog.New(slog.NewJSONHandler(&logs.buf, nil))})
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone-1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up.arrived:
	case <-time.After(goneBound):
		t.Fatal("request did not reach the upstream")
	}
	c.Close()
	logs.checkFields(t, logs.line(t, "gone-1"), map[string]string{"status": "499", "trace_id": "*", "ok": "false",
		"error": "*", "endpoint": up.Listener.Addr().String()})
}

// TestAccessLogOff: with log.access false no line is written, and answers
// still carry x-request-id.
func TestAccessLogOff(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	cfg := baseConfig(up.URL).WithMaxConcurrentRequests(1)
	cfg.Log.Access = new(bool)
	p, logs := loggedProxy(t, cfg, Options{}, true)
	resp, _ := doRequest(t, newClient(), "GET", p.URL+"/v1/models", "", nil)
	g, err := p.Router().TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	rej, _ := doRequest(t, newClient(), "GET", p.URL+"/v1/models", "", nil)
	g.Release()
	if resp.StatusCode != 200 || rej.StatusCode != 429 || resp.Header.Get("X-Request-Id") == "" || rej.Header.Get("X-Request-Id") == "" {
		t.Fatalf("statuses %d %d, ids %q %q", resp.StatusCode, rej.StatusCode, resp.Header.Get("X-Request-Id"), rej.Header.Get("X-Request-Id"))
	}
	if n := len(logs.lines(t)); n != 0 {
		t.Fatalf("%d access lines with log.access false", n)
	}
}

// TestAccessLogModelAndRequestID: the line names the model the client
// asked for (an alias, before it is rewritten), and a plugin that removes
// x-request-id from the answer does not remove it.
func TestAccessLogModelAndRequestID(t *testing.T) {
	llama, _, cfg := modelPools(t)
	strip := &funcFilter{name: "strip", onRspHdr: func(ex *Exchange) (Action, error) {
		ex.ResponseHeaders().DelString("x-request-id")
		return ActionContinue, nil
	}}
	p, logs := loggedProxy(t, cfg, Options{Filters: []Filter{strip}}, false)
	resp, _ := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatFor("gpt-4o"),
		map[string]string{"X-Request-Id": "alias-1"})
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "alias-1" {
		t.Fatalf("status %d, x-request-id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	m := logs.line(t, "alias-1")
	logs.checkFields(t, m, map[string]string{"model": "gpt-4o", "upstream": "llama"})
	if ep := m["endpoint"]; ep != llama[0].Addr && ep != llama[1].Addr {
		t.Errorf("endpoint = %q, want one of pool llama's", ep)
	}
}

// rawExchange sends raw on a new connection and reads the response head
// (and body) within 10s.
func rawExchange(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	c := rawConn(t, addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestTraceContextForwarded: a valid traceparent reaches the upstream
// unchanged with its tracestate; a missing, invalid or duplicated one is
// replaced by a generated one and tracestate is dropped; the log line's
// trace_id is the one the upstream received.
func TestTraceContextForwarded(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	p, logs := loggedProxy(t, baseConfig(up.URL), Options{}, true)
	c := newClient()
	cases := []struct {
		name        string
		traceparent []string
		tracestate  string
		keep        bool
	}{
		{"valid", []string{clientTraceparent}, "congo=t61rcWkgMzE", true},
		{"higher version", []string{"cc-" + clientTraceID + "-00f067aa0ba902b7-01-future"}, "rojo=1", true},
		{"absent", nil, "", false},
		{"tracestate alone", nil, "congo=t61rcWkgMzE", false},
		{"invalid", []string{"00-" + clientTraceID + "-0000000000000000-01"}, "congo=t61rcWkgMzE", false},
		{"duplicated", []string{clientTraceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "congo=x", false},
	}
	seen := map[string]bool{}
	for i, tc := range cases {
		req, _ := http.NewRequest("GET", p.URL+"/v1/models", nil)
		for _, v := range tc.traceparent {
			req.Header.Add("Traceparent", v)
		}
		if tc.tracestate != "" {
			req.Header.Set("Tracestate", tc.tracestate)
		}
		id := "trace-case-" + string(rune('a'+i))
		req.Header.Set("X-Request-Id", id)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := up.LastRequest().Header
		tps := got.Values("Traceparent")
		if len(tps) != 1 {
			t.Fatalf("%s: upstream got %d traceparent fields: %q", tc.name, len(tps), tps)
		}
		gotID, ok := traceparent.Parse([]byte(tps[0]))
		switch {
		case !ok:
			t.Fatalf("%s: upstream got an invalid traceparent %q", tc.name, tps[0])
		case tc.keep && (tps[0] != tc.traceparent[0] || got.Get("Tracestate") != tc.tracestate):
			t.Fatalf("%s: upstream got %q %q, want the client's unchanged", tc.name, tps[0], got.Get("Tracestate"))
		case !tc.keep && (!strings.HasPrefix(tps[0], "00-") || !strings.HasSuffix(tps[0], "-01") || got.Get("Tracestate") != ""):
			t.Fatalf("%s: upstream got %q tracestate %q, want a generated version 00 sampled one and no tracestate",
				tc.name, tps[0], got.Get("Tracestate"))
		case !tc.keep && seen[string(gotID)]:
			t.Fatalf("%s: generated trace id %s seen before", tc.name, gotID)
		}
		seen[string(gotID)] = true
		logs.checkFields(t, logs.line(t, id), map[string]string{"trace_id": string(gotID)})
	}
}

// TestTraceContextVisibleToFilters: plugins see the traceparent that is
// forwarded, generated ones included.
func TestTraceContextVisibleToFilters(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	var seen string
	f := &funcFilter{name: "peek", onReqHdr: func(ex *Exchange) (Action, error) {
		v, _ := ex.RequestHeaders().GetString("traceparent")
		seen = string(v)
		return ActionContinue, nil
	}}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	resp, _ := doRequest(t, newClient(), "GET", p.URL+"/v1/models", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if fwd := up.LastRequest().Header.Get("Traceparent"); seen == "" || seen != fwd {
		t.Fatalf("filter saw traceparent %q, upstream got %q", seen, fwd)
	}
}
