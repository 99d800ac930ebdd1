package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// reloadConfig is baseConfig as startProxy serves it (the hostname a
// reload must keep).
func reloadConfig(urls ...string) *Config { return baseConfig(urls...).WithHostname("127.0.0.1") }

// quiet are reload Options that log nowhere, as startProxy's do.
func quiet(onRetire func()) Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnRetire: onRetire}
}

// retireSignal returns an OnRetire that closes the returned channel (a
// second call panics: a generation is retired once).
func retireSignal() (func(), <-chan struct{}) {
	ch := make(chan struct{})
	return func() { close(ch) }, ch
}

func upstreamName(t testing.TB, p *testProxy) string {
	t.Helper()
	resp, _ := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("x-upstream-name")
}

// postHeld opens a stream through p to held and returns the client
// connection once the request is at the upstream; the stream ends when
// held is released. readDone reads the answer to its end.
func postHeld(t *testing.T, p *testProxy, held *holdUpstream) net.Conn {
	t.Helper()
	c := rawRequest(t, p.Addr, "/stream")
	select {
	case <-held.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream never reached the upstream")
	}
	return c
}

// readDone reads the answer on c and fails unless it is a complete
// event stream.
func readDone(t *testing.T, c net.Conn) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), "[DONE]") {
		t.Fatalf("the stream was cut: %d %v %q", resp.StatusCode, err, b)
	}
}

// endOnOld releases held so that stream ends on the old generation, and
// waits for that generation's retirement.
func endOnOld(t *testing.T, held *holdUpstream, stream net.Conn, retired <-chan struct{}) {
	t.Helper()
	close(held.release)
	readDone(t, stream)
	select {
	case <-retired:
	case <-time.After(10 * time.Second):
		t.Fatal("the old generation was not retired after its last request")
	}
}

// TestReloadOldGenerationFinishesItsStream: after a reload new requests
// go to the new pools at once, a stream started before it runs to its end
// on the old generation, and the old generation is retired (OnRetire)
// only once that stream has ended.
func TestReloadOldGenerationFinishesItsStream(t *testing.T) {
	held := startHoldUpstream(t)
	b := startUpstream(t, proxytest.Options{Name: "b"})
	onRetire, retired := retireSignal()
	p := startProxy(t, reloadConfig(held.URL), Options{OnRetire: onRetire})
	stream := postHeld(t, p, held)
	if err := p.Reload(reloadConfig(b.URL), quiet(nil)); err != nil {
		t.Fatal(err)
	}
	if got := upstreamName(t, p); got != "b" {
		t.Fatalf("after the reload: upstream %q, want b", got)
	}
	select {
	case <-retired:
		t.Fatal("the old generation was retired while its stream ran")
	default:
	}
	endOnOld(t, held, stream, retired)
	if got := p.Config().Upstreams[0].Endpoints[0]; got != b.URL {
		t.Fatalf("Config() = %s, want the reloaded one", got)
	}
	checkSlotsFree(t, p.Router())
}

// TestReloadSlotsCarryOver: a request in flight keeps its slot across a
// reload and counts against the new max_concurrent_requests.
func TestReloadSlotsCarryOver(t *testing.T) {
	held := startHoldUpstream(t)
	up := startUpstream(t, proxytest.Options{})
	p := startProxy(t, reloadConfig(held.URL).WithMaxConcurrentRequests(4), Options{})
	stream := postHeld(t, p, held)
	if err := p.Reload(reloadConfig(up.URL).WithMaxConcurrentRequests(1), quiet(nil)); err != nil {
		t.Fatal(err)
	}
	if h := p.Router().Health(); h.ActiveRequests != 1 || h.MaxConcurrentRequests != 1 {
		t.Fatalf("after the reload: %+v, want 1 active of 1", h)
	}
	r, _ := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a request past the new max: %d, want 429", r.StatusCode)
	}
	close(held.release)
	readDone(t, stream)
	checkSlotsFree(t, p.Router())
	if r, _ := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil); r.StatusCode != 200 {
		t.Fatalf("after the stream ended: %d", r.StatusCode)
	}
}

// TestReloadRefused: a change only a restart can apply, or a config that
// does not resolve, changes nothing; the error names the setting.
func TestReloadRefused(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Name: "a"})
	other := startUpstream(t, proxytest.Options{Name: "b"})
	onRetire, retired := retireSignal()
	p := startProxy(t, reloadConfig(up.URL), Options{OnRetire: onRetire})
	f := func(cfg *Config, want string) {
		t.Helper()
		err := p.Reload(cfg, quiet(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Reload: %v, want an error naming %s", err, want)
		}
		if cerr := p.CheckReload(cfg); cerr == nil || cerr.Error() != err.Error() {
			t.Fatalf("CheckReload: %v, Reload: %v", cerr, err)
		}
		if got := upstreamName(t, p); got != "a" {
			t.Fatalf("a refused reload changed the upstream to %q", got)
		}
	}
	f(reloadConfig(other.URL).WithPort(9), "port")
	f(reloadConfig(other.URL).WithHostname("127.0.0.2"), "hostname")
	big := reloadConfig(other.URL)
	big.MaxRequestBodySize *= 2
	f(big, "max_request_body_size")
	bad := reloadConfig("ftp://nowhere")
	f(bad, "ftp")
	var re *config.RestartError
	if err := p.Reload(reloadConfig(other.URL).WithPort(9), Options{}); !errors.As(err, &re) || re.Changes[0].Key != "port" {
		t.Fatalf("want a *config.RestartError for port, got %v", err)
	}
	select {
	case <-retired:
		t.Fatal("a refused reload retired the running generation")
	default:
	}
}

// TestReloadAfterShutdown: Reload refuses once the server drains, and
// Close retires the current generation.
func TestReloadAfterShutdown(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	srv := newServer(t, reloadConfig(up.URL), Options{})
	onRetire, retired := retireSignal()
	if err := srv.Reload(reloadConfig(up.URL), quiet(onRetire)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	select {
	case <-retired:
	default:
		t.Fatal("Shutdown did not retire the current generation")
	}
	if err := srv.Reload(reloadConfig(up.URL), Options{}); !errors.Is(err, ErrReloadClosed) {
		t.Fatalf("Reload after Shutdown: %v, want ErrReloadClosed", err)
	}
}

// TestReloadHammer swaps generations while clients send plain and
// streamed requests on keep-alive connections: no request fails, every
// replaced generation is retired exactly once, and every slot comes back
// (run with -race: the swap, the references and the retirement race the
// request path).
func TestReloadHammer(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 4, TokenDelay: time.Millisecond})
	var retiredN atomic.Int64
	count := func() { retiredN.Add(1) }
	p := startProxy(t, reloadConfig(up.URL), quiet(count))
	const clients, reloads = 6, 20
	load := testsync.StartLoad(clients, func(i int) error {
		body := chatBody
		if i%2 == 1 {
			body = chatStreamBody
		}
		resp, err := http.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Errorf("request: %v", err)
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || (i%2 == 1) != strings.Contains(string(b), "[DONE]") {
			t.Errorf("request: %d %v %.200q", resp.StatusCode, err, b)
			return errors.New("failed")
		}
		return nil
	})
	for i := range reloads {
		// Traffic between swaps, so each generation serves some.
		load.Await(t, 10*time.Second, 3)
		if err := p.Reload(reloadConfig(up.URL).WithMaxConcurrentRequests(64+i), quiet(count)); err != nil {
			t.Fatal(err)
		}
	}
	sent, failed := load.Stop()
	if failed != 0 {
		t.Fatalf("%d of %d requests failed across %d reloads", failed, sent, reloads)
	}
	waitFor(t, "every replaced generation retired", func() bool { return retiredN.Load() == reloads })
	checkSlotsFree(t, p.Router())
	// Every generation counted into the same series: none is lost.
	for _, series := range []string{`sluice_responses_total{code="200"}`, `sluice_request_duration_seconds_count`} {
		waitFor(t, series+" counts every request", func() bool { return metricValue(t, p, series) == float64(sent) })
	}
	p.gen.mu.Lock()
	live := len(p.gen.live)
	p.gen.mu.Unlock()
	if live != 1 {
		t.Fatalf("%d generations still live, want the current one", live)
	}
}

// TestReloadParseErrorsFollowConfig: the answers to requests fasthttp
// refuses while parsing (431 here) take the current generation's error
// shape once a reload changed openai_compat.
func TestReloadParseErrorsFollowConfig(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	p := startProxy(t, reloadConfig(up.URL), Options{})
	answer431 := func() string {
		t.Helper()
		c := rawConn(t, p.Addr)
		if _, err := io.WriteString(c, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 70<<10)+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 431 {
			t.Fatalf("status %d %v, want 431", resp.StatusCode, err)
		}
		return string(b)
	}
	if b := answer431(); strings.Contains(b, "error_type") {
		t.Fatalf("before the reload: %s, want OpenAI's shape", b)
	}
	if err := p.Reload(reloadConfig(up.URL).WithOpenAICompat(false), quiet(nil)); err != nil {
		t.Fatal(err)
	}
	if b := answer431(); !strings.Contains(b, "error_type") {
		t.Fatalf("after a reload to openai_compat false: %s, want TGI's shape", b)
	}
}
