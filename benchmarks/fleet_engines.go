package main

// The engines of the fleet benchmark: simulated vLLM-like engines from
// package sim, one per endpoint, each with its own seed.

import (
	"fmt"

	"github.com/sluice-proxy/sluice/sim"
)

// fleetEngineKind describes the engines in reports.
const fleetEngineKind = "engine simulator (package sim): continuous batching, token budget per step, vLLM-style prefix cache"

// newFleetEngine starts simulated engine i; the caller closes it.
func newFleetEngine(i int, c fleetEngineConfig) (*sim.Engine, error) {
	e, err := sim.New(sim.Config{
		Model: c.Model, MaxNumSeqs: c.MaxNumSeqs, MaxBatchedTokens: c.MaxBatchedTokens,
		BlockSize: c.BlockSize, NumBlocks: c.NumBlocks, TimeScale: c.TimeScale,
		Seed:         c.Seed + int64(i),
		StepOverhead: c.StepOverhead, PrefillPerToken: c.PrefillPerToken, DecodePerSeq: c.DecodePerSeq,
	})
	if err != nil {
		return nil, fmt.Errorf("benchmarks: fleet engine %d: %w", i, err)
	}
	return e, nil
}
