package upstream

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/internal/testkit"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// newPools resolves cfg and builds its pools, logging nowhere.
func newPools(cfg *config.Config) (*Pools, error) {
	rc, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	return New(rc, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}), nil
}

// The shared helpers (package testkit), under the names the tests use.
func startUpstream(t testing.TB, opts proxytest.Options) *proxytest.Server {
	return testkit.StartUpstream(t, opts)
}

func waitFor(t testing.TB, what string, cond func() bool) { t.Helper(); testkit.WaitFor(t, what, cond) }

func tcpPair(t testing.TB) (client, server *net.TCPConn) { return testkit.TCPPair(t) }

// acquireAsync acquires an endpoint of p with a fresh Waiter in a new
// goroutine and delivers it (nil when refused) on the channel returned.
func acquireAsync(p *Pool) <-chan *Endpoint {
	got := make(chan *Endpoint, 1)
	go func() {
		w := NewWaiter()
		ep, _ := p.Acquire(&w)
		got <- ep
	}()
	return got
}
