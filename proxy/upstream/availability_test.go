package upstream

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestOnAvailability: the pools tell the layer above, through the callback
// given to New (no pointer to a router), when the last endpoint of every
// pool leaves rotation and when one comes back; the last word is right.
func TestOnAvailability(t *testing.T) {
	cfg := config.New().WithUpstream("a", "http://127.0.0.1:10001").WithUpstream("b", "http://127.0.0.1:10002", "http://127.0.0.1:10003")
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []bool
	ps := New(rc, Options{
		Log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnAvailability: func(anyUp bool) { mu.Lock(); calls = append(calls, anyUp); mu.Unlock() },
	})
	t.Cleanup(ps.Close)
	last := func() (bool, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) == 0 {
			t.Fatal("OnAvailability never called")
		}
		return calls[len(calls)-1], len(calls)
	}
	eps := []*Endpoint{ps.ByName("a").Endpoints()[0], ps.ByName("b").Endpoints()[0], ps.ByName("b").Endpoints()[1]}
	for _, ep := range eps[:2] {
		ep.SetActive(false)
		if up, _ := last(); !up {
			t.Fatal("reported no endpoint in rotation while one is")
		}
	}
	eps[2].SetActive(false)
	if up, _ := last(); up {
		t.Fatal("the last endpoint left rotation and OnAvailability was not told")
	}
	eps[1].SetActive(true)
	if up, _ := last(); !up {
		t.Fatal("an endpoint came back and OnAvailability was not told")
	}
}
