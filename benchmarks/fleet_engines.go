//go:build !simfleet

package main

// This file is the fleet benchmark's only coupling to the engines behind
// Sluice. Until the engine simulator (package sim) is merged, the engines
// are a stand-in: proxy/proxytest servers that stream max_tokens tokens at
// a fixed pace, with no batch limit, no queue and no prefix cache. Their
// TTFT does not depend on load, so the stand-in's numbers exercise the
// harness, not the routing. fleet_engines_sim.go (build tag simfleet) is
// the simulator-backed version of this file: once sim exists, delete this
// file and the build tag line of that one.

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// fleetEngineKind describes the engines in reports.
const fleetEngineKind = "STAND-IN: proxy/proxytest servers (fixed per-token delay, no batching limit, no queue, no prefix cache); " +
	"these numbers test the harness, not the routing policies, and are to be replaced by runs on the engine simulator (package sim)"

// fleetStandIn is true while the engines are the stand-in.
const fleetStandIn = true

// newFleetEngine returns the handler of engine i and its Close. The
// stand-in sends each token after one simulated decode step of a lone
// sequence (StepOverhead + DecodePerSeq), in wall time, and reports vLLM
// load gauges (all zero) on /metrics so least_queue has something to
// scrape.
func newFleetEngine(i int, c fleetEngineConfig) (http.Handler, func(), error) {
	step := time.Duration(float64(c.StepOverhead+c.DecodePerSeq) / c.TimeScale)
	s := proxytest.NewUnstartedServer(proxytest.Options{
		Name: fmt.Sprintf("engine-%d", i), Model: c.Model, Tokens: 1 << 20, TokenDelay: step,
	})
	if err := s.SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM}); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("benchmarks: fleet engine %d: %w", i, err)
	}
	return s.Handler(), s.Close, nil
}
