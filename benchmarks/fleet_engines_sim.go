//go:build simfleet

package main

// The simulator-backed engines of the fleet benchmark (see
// fleet_engines.go for the stand-in this replaces). Build with
// `go run -tags simfleet ./benchmarks -fleet` once package sim exists; when
// it is merged, delete fleet_engines.go and the build tag line above.

import (
	"fmt"
	"net/http"

	"github.com/sluice-proxy/sluice/sim"
)

// fleetEngineKind describes the engines in reports.
const fleetEngineKind = "engine simulator (package sim): continuous batching, token budget per step, vLLM-style prefix cache"

// fleetStandIn is true while the engines are the stand-in.
const fleetStandIn = false

// newFleetEngine returns the handler of simulated engine i and its Close.
func newFleetEngine(i int, c fleetEngineConfig) (http.Handler, func(), error) {
	e, err := sim.New(sim.Config{
		Model: c.Model, MaxNumSeqs: c.MaxNumSeqs, MaxBatchedTokens: c.MaxBatchedTokens,
		BlockSize: c.BlockSize, NumBlocks: c.NumBlocks, TimeScale: c.TimeScale,
		Seed:         c.Seed + int64(i),
		StepOverhead: c.StepOverhead, PrefillPerToken: c.PrefillPerToken, DecodePerSeq: c.DecodePerSeq,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("benchmarks: fleet engine %d: %w", i, err)
	}
	return e.Handler(), e.Close, nil
}
