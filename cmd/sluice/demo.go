package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/sim"
)

// demoModel is the model the -demo engine serves.
const demoModel = "demo"

// demoUpstream is the simulated inference engine behind -demo: a sim
// engine (continuous batching, prefix cache, vLLM's /metrics) serving
// model "demo" in real time on 127.0.0.1, so tokens stream at the pace a
// Llama-3-8B-class model on one GPU would give them.
type demoUpstream struct {
	url    string
	engine *sim.Engine
	srv    *http.Server
}

func startDemo() (*demoUpstream, error) {
	e, err := sim.New(sim.Config{Model: demoModel})
	if err != nil {
		return nil, fmt.Errorf("simulated engine: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Close()
		return nil, err
	}
	hs := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return &demoUpstream{url: "http://" + ln.Addr().String(), engine: e, srv: hs}, nil
}

// upstream is the pool -demo proxies to when the config names none: the
// engine, its vLLM metrics scraped so least_queue sees its queue.
func (d *demoUpstream) upstream() proxy.UpstreamConfig {
	return proxy.UpstreamConfig{Name: "default", Endpoints: []string{d.url}, MetricsPath: "/metrics"}
}

// close stops the engine (streams still running end with an error event)
// and its HTTP server.
func (d *demoUpstream) close() {
	d.engine.Close()
	_ = d.srv.Close()
}
