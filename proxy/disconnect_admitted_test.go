package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
)

// Clients that leave before their request reaches an engine: while it is
// queued for an endpoint, paused by a plugin, or between plugin callbacks
// (disconnect.go). checkClientGone (disconnect_test.go) covers those that
// leave while the engine works.

// leaveWays are the two ways a client leaves: it closes its socket, or it
// half-closes it (shutdown(SHUT_WR)) and would still read, which nginx
// and Sluice count as gone alike.
var leaveWays = []struct {
	name  string
	leave func(c net.Conn)
}{
	{"close", func(c net.Conn) { _ = c.Close() }},
	{"half-close", func(c net.Conn) { _ = c.(*net.TCPConn).CloseWrite() }},
}

// vanishProxy starts a proxy of cfg logging into the returned buffer, in
// front of a hold upstream whose URL cfg gets; it skips where the
// disconnect watch is not supported.
func vanishProxy(t *testing.T, cfg func(url string) *Config, filters ...Filter) (*holdUpstream, *testProxy, *testsync.LogBuffer) {
	t.Helper()
	skipUnwatched(t)
	up := startHoldUpstream(t)
	logs := &testsync.LogBuffer{}
	p := startProxy(t, cfg(up.URL), Options{Filters: filters, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return up, p, logs
}

// checkGoneCounted asserts a 499 access log line and that exactly one
// disconnect was counted, in phase.
func checkGoneCounted(t *testing.T, p *testProxy, logs *testsync.LogBuffer, phase string) {
	t.Helper()
	within(t, "access log line with 499", func() bool { return strings.Contains(logs.String(), "status=499") })
	for _, name := range phaseNames {
		want := 0.0
		if name == phase {
			want = 1
		}
		series := `sluice_client_disconnects_total{phase="` + name + `"}`
		if v := metricValue(t, p, series); v != want {
			t.Fatalf("%s = %v, want %v", series, v, want)
		}
	}
}

// TestClientGoneWhileQueued: with the only endpoint slot held, a second
// request waits in the pool's queue; its client leaves. It leaves the
// queue at once (not at the 60 s queue timeout), its admission slot is
// freed, it is logged 499 and counted as "queued", and the engine never
// sees it: a third request, queued behind it FIFO, is the next one the
// engine gets.
func TestClientGoneWhileQueued(t *testing.T) {
	for _, way := range leaveWays {
		t.Run(way.name, func(t *testing.T) {
			up, p, logs := vanishProxy(t, func(url string) *Config {
				return baseConfig(url).WithMaxBatchSize(1).WithTimeout(60 * time.Second)
			})
			pool := p.pools.List()[0]
			first := rawRequest(t, p.Addr, "/first")
			if got := <-up.arrived; got != "/first" {
				t.Fatalf("upstream got %q first", got)
			}
			second := rawRequest(t, p.Addr, "/second")
			within(t, "second request queued", func() bool { return pool.Queued() == 1 })

			way.leave(second)
			within(t, "queue emptied", func() bool { return pool.Queued() == 0 })
			within(t, "its admission slot freed", func() bool { return p.Router().Health().ActiveRequests == 1 })
			checkGoneCounted(t, p, logs, "queued")

			close(up.release)
			_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(first), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: %v %v", resp, err)
			}
			resp.Body.Close()
			if r, body := doRequest(t, newClient(), "POST", p.URL+"/third", chatBody, nil); r.StatusCode != 200 {
				t.Fatalf("third request: %d %q", r.StatusCode, body)
			}
			if got := <-up.arrived; got != "/third" {
				t.Fatalf("upstream got %q after the first request, want /third: the gone client's request was sent", got)
			}
			checkSlotsFree(t, p.Router())
			ep := pool.Endpoints()[0]
			within(t, "endpoint slot free", func() bool { return ep.InFlight() == 0 })
			if n := ep.Failures(); n != 0 {
				t.Fatalf("endpoint blamed for the client's leaving: %d failures", n)
			}
		})
	}
}

// TestClientGoneWhilePaused: a plugin pauses the request (in the request
// or the response headers phase) and never resumes it; its client leaves.
// The request ends within about a disconnectCheckInterval, not at the 60 s
// pause timeout: the filter gets OnDone once, the slots are freed, it is
// logged 499 and counted as "paused", and a request paused before its
// send never reaches the engine.
func TestClientGoneWhilePaused(t *testing.T) {
	for _, ph := range []string{"request", "response"} {
		for _, way := range leaveWays {
			t.Run(ph+"/"+way.name, func(t *testing.T) {
				paused := make(chan struct{}, 1)
				pause := func(*Exchange) (Action, error) { paused <- struct{}{}; return ActionPause, nil }
				f := &funcFilter{name: "stuck"}
				if ph == "request" {
					f.onReqHdr = pause
				} else {
					f.onRspHdr = pause
				}
				up, p, logs := vanishProxy(t, func(url string) *Config { return baseConfig(url).WithTimeout(60 * time.Second) }, f)
				if ph == "response" {
					close(up.release)
				}
				c := rawRequest(t, p.Addr, "/v1/chat/completions")
				receive(t, "the filter paused the request", paused)

				way.leave(c)
				within(t, "admission slot freed", func() bool { return p.Router().Health().ActiveRequests == 0 })
				within(t, "the filter's stream ended", func() bool { return f.done.Load() == 1 })
				checkGoneCounted(t, p, logs, "paused")
				ep := p.pools.List()[0].Endpoints()[0]
				within(t, "endpoint slot free", func() bool { return ep.InFlight() == 0 })
				if ph == "request" && len(up.arrived) != 0 {
					t.Fatal("a request paused before its send reached the engine")
				}
				checkSlotsFree(t, p.Router())
			})
		}
	}
}

// TestClientGoneBetweenCallbacks: the client leaves while a plugin's
// callback runs (not paused). The callback returns, and the request ends
// there: the next filter's callback is not called (Envoy stops the chain
// on a downstream reset), both streams get OnDone, nothing reaches the
// engine, 499, counted as "admitted".
func TestClientGoneBetweenCallbacks(t *testing.T) {
	inside, proceed := make(chan struct{}, 1), make(chan struct{})
	slow := &funcFilter{name: "slow", onReqHdr: func(*Exchange) (Action, error) {
		inside <- struct{}{}
		<-proceed
		return ActionContinue, nil
	}}
	next := &funcFilter{name: "next", onReqHdr: func(*Exchange) (Action, error) {
		t.Error("a callback ran for a gone client")
		return ActionContinue, nil
	}}
	up, p, logs := vanishProxy(t, func(url string) *Config { return baseConfig(url) }, slow, next)
	c := rawRequest(t, p.Addr, "/v1/chat/completions")
	receive(t, "the first callback runs", inside)
	_ = c.Close()
	within(t, "the client seen gone", func() bool {
		return metricValue(t, p, `sluice_client_disconnects_total{phase="admitted"}`) == 1
	})
	close(proceed)
	within(t, "admission slot freed", func() bool { return p.Router().Health().ActiveRequests == 0 })
	checkGoneCounted(t, p, logs, "admitted")
	if slow.done.Load() != 1 || next.done.Load() != 1 {
		t.Fatalf("OnDone calls: %d and %d, want 1 each", slow.done.Load(), next.done.Load())
	}
	if len(up.arrived) != 0 {
		t.Fatal("the request reached the engine")
	}
}

// pauseFilter pauses about half of the requests in their request headers
// and resumes each after a random delay from another goroutine, as a
// callout reply would; OnDone waits for that goroutine, so it never
// touches an Exchange that went back to the pool.
type pauseFilter struct{ funcFilter }

type pauseStream struct {
	funcStream
	stop chan struct{}
	wg   sync.WaitGroup
}

func (f *pauseFilter) NewStream(ex *Exchange) (Stream, error) {
	f.streams.Add(1)
	return &pauseStream{funcStream: funcStream{f: &f.funcFilter, ex: ex}, stop: make(chan struct{})}, nil
}

func (s *pauseStream) OnRequestHeaders(bool) (Action, error) {
	if rand.IntN(2) == 0 {
		return ActionContinue, nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-time.After(time.Duration(rand.IntN(4000)) * time.Microsecond):
		case <-s.stop:
			return
		}
		if s.ex.BeginAsync() {
			s.ex.Resume()
			s.ex.EndAsync()
		}
	}()
	return ActionPause, nil
}

func (s *pauseStream) OnDone() {
	close(s.stop)
	s.wg.Wait()
	s.funcStream.OnDone()
}

// TestHammerClientsLeaveAnywhere: clients leave at random moments while
// their requests are paused by a plugin, queued for one of two endpoint
// slots, waiting on the engine or streaming, with the watcher sweeping
// every few milliseconds. Every filter stream ends once, and nothing is
// left: no admission slot, no endpoint slot, no queued request; the
// endpoint is never blamed, and the proxy serves normally afterwards.
func TestHammerClientsLeaveAnywhere(t *testing.T) {
	skipUnwatched(t)
	f := &pauseFilter{funcFilter{name: "pauser"}}
	cfg := baseConfig(randomDelayUpstream(t)).WithMaxConcurrentRequests(64).WithMaxBatchSize(2).WithTimeout(60 * time.Second)
	p := startProxy(t, cfg, Options{Filters: []Filter{f}})
	p.watch.interval = 2 * time.Millisecond // before any request starts the watcher
	leavingClients(t, p.Addr, 16, 10, 3)
	checkSlotsFree(t, p.Router())
	pool := p.pools.List()[0]
	ep := pool.Endpoints()[0]
	waitFor(t, "endpoint slots free", func() bool { return ep.InFlight() == 0 })
	if n := pool.Queued(); n != 0 {
		t.Fatalf("%d requests still queued", n)
	}
	waitFor(t, "every filter stream ended", func() bool { return f.done.Load() == f.streams.Load() })
	if f := ep.Failures(); f != 0 {
		t.Fatalf("endpoint failures = %d: leaving clients blamed on it", f)
	}
	for _, name := range phaseNames {
		t.Logf("gone while %s: %v", name, metricValue(t, p, `sluice_client_disconnects_total{phase="`+name+`"}`))
	}
	resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, map[string]string{"Connection": "close"})
	if resp.StatusCode != 200 {
		t.Fatalf("after the hammer: %d %q", resp.StatusCode, body)
	}
	checkSlotsFree(t, p.Router())
}

// randomDelayUpstream is an engine that answers after up to 3 ms, or, on
// /stream, sends four events that far apart and then [DONE]; it returns
// its URL.
func randomDelayUpstream(t *testing.T) string {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		d := time.Duration(rand.IntN(3000)) * time.Microsecond
		if r.URL.Path != "/stream" {
			time.Sleep(d)
			_, _ = io.WriteString(w, `{"ok":true}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 4; i++ {
			_, _ = io.WriteString(w, "data: x\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(d)
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// leavingClients runs clients goroutines that each send perClient
// requests to addr, one per connection, alternating a completion and a
// stream, and end each one of the first ways of: close after up to 8 ms;
// read the answer to its end, then close; half-close after up to 8 ms,
// read, then close. It returns when all are done.
func leavingClients(t *testing.T, addr string, clients, perClient, ways int) {
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				path := "/v1/chat/completions"
				if i%2 == 1 {
					path = "/stream"
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: sluice.test\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", path, len(chatBody), chatBody)
				way := rand.IntN(ways)
				if way != 1 {
					time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
				}
				if way == 2 {
					_ = c.(*net.TCPConn).CloseWrite()
				}
				if way != 0 {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, _ = io.Copy(io.Discard, c) // until the proxy closes or the deadline
				}
				_ = c.Close()
			}
		}()
	}
	wg.Wait()
}
