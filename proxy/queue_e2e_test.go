package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestBatchOverflowQueuesNot429: with the defaults (128 admission slots,
// max_batch_size 32) and one endpoint, 40 concurrent requests all
// succeed: the 33rd to 40th wait in the pool's queue, holding their
// admission slots, instead of getting 429 while 88 slots are free (issue
// 9; text-generation-inference queues requests beyond a batch).
func TestBatchOverflowQueuesNot429(t *testing.T) {
	const n = 40
	var inFlight, peak, hits atomic.Int64
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := peak.Load()
			if cur <= old || peak.CompareAndSwap(old, cur) {
				break
			}
		}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"chat.completion"}`))
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	p := startProxy(t, baseConfig(up.URL), Options{}) // every limit at its default
	statuses := make(chan int, n)
	c := newClient()
	for range n {
		go func() {
			req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatBody))
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("request: %v", err)
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	q := p.pools.List()[0]
	deadline := time.Now().Add(20 * time.Second)
	for inFlight.Load() != config.DefaultMaxBatchSize || q.Queued() != n-config.DefaultMaxBatchSize {
		select {
		case code := <-statuses:
			t.Fatalf("a request ended with %d while the endpoint was full; want it to wait", code)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream in flight %d, queued %d; want %d and %d",
				inFlight.Load(), q.Queued(), config.DefaultMaxBatchSize, n-config.DefaultMaxBatchSize)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if a := p.Router().Metrics().Active; a != n {
		t.Fatalf("%d admission slots held, want %d (queued requests keep theirs)", a, n)
	}
	close(release)
	for range n {
		if code := <-statuses; code != 200 {
			t.Fatalf("status %d, want 200 for every request", code)
		}
	}
	if pk := peak.Load(); pk > config.DefaultMaxBatchSize {
		t.Fatalf("%d requests in flight on one endpoint, above max_batch_size %d", pk, config.DefaultMaxBatchSize)
	}
	if hits.Load() != n {
		t.Fatalf("upstream served %d requests, want %d", hits.Load(), n)
	}
	checkSlotsFree(t, p.Router())
}
