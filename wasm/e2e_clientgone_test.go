package wasm

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
)

// TestE2EClientGoneDuringCallout: a request paused on an HTTP call that
// never answers, under a 60 s pause timeout; its client leaves. The
// proxy's disconnect watch ends the request within about 250 ms (asserted
// within 3 s for a starved CI machine), as Envoy resets a stream on a
// downstream reset: proxy_on_log and proxy_on_done run (the guest's
// in-flight gauge, which its on_done lowers, is back to 0), the pending
// call is cancelled and its failure callback finds the request gone, the
// request is counted as gone while "paused", and the instance serves on.
func TestE2EClientGoneDuringCallout(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the disconnect watch peeks at sockets on Linux only")
	}
	s := newAsyncSetup(t, "", 1, proxyOptions{timeout: 60 * time.Second})
	c, err := net.Dial("tcp", strings.TrimPrefix(s.e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	fmt.Fprint(c, "GET /gone HTTP/1.1\r\nHost: a.test\r\nx-async-metric: 1\r\nx-async-callout: slow\r\n"+
		"x-async-callout-path: /slow\r\nx-async-callout-timeout: 60000\r\n\r\n")
	waitFor(t, "the call to reach its server", func() bool { return s.slow.started.Load() == 1 })
	if n := s.e.srv.Router().Health().ActiveRequests; n != 1 {
		t.Fatalf("%d active requests while paused, want 1", n)
	}

	_ = c.Close()
	testsync.WaitFor(t, 3*time.Second, "the paused request to end", func() bool {
		return s.e.srv.Router().Health().ActiveRequests == 0
	})
	m := s.e.metrics(t)
	for _, w := range []string{
		`sluice_client_disconnects_total{phase="paused"} 1`,
		`sluice_wasm_async_inflight{plugin="async"} 0`, // on_done ran
	} {
		if !strings.Contains(m, w+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", w, testsync.Grep(m, "sluice_"))
		}
	}
	waitFor(t, "the call to be cancelled", func() bool { return s.slow.cancelled.Load() == 1 })
	waitFor(t, "no call in flight", func() bool { return s.p.calloutsInFlight() == 0 })
	waitFor(t, "the failure callback", func() bool {
		return strings.Contains(s.h.logs.String(), "gone before its replies")
	})
	if r := s.e.do(t, "GET", "/after", "", "x-async-counter", "after"); r.status != 200 || r.header.Get("x-counter") != "1" {
		t.Fatalf("after: %d %v", r.status, r.header)
	}
	if s.p.liveInstances() != 1 {
		t.Error("the instance was discarded")
	}
}
