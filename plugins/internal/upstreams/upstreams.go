// Package upstreams decodes the host's sluice.upstreams property, the
// snapshot of every pool and endpoint that the routing plugins
// (modelrouter, queuepicker) read per request. It builds for the host and
// for wasip1 guests, so it is tested and fuzzed on the host.
package upstreams

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Property paths the routing plugins read. Read-only: callers pass them
// to sdk.GetProperty and must not modify them.
var (
	// Path is sluice.upstreams, the snapshot Parse decodes.
	Path = []string{"sluice", "upstreams"}
	// PoolPath is sluice.upstream, the pool chosen for the request: set
	// by a router (modelrouter), read by a picker (queuepicker); not
	// found before anything chose one.
	PoolPath = []string{"sluice", "upstream"}
)

// Endpoint is one endpoint of a pool in the snapshot; a load figure the
// host does not report is 0.
type Endpoint struct {
	Healthy      bool    `json:"healthy"`
	InFlight     float64 `json:"in_flight"`
	QueueDepth   float64 `json:"queue_depth"`
	KVCacheUsage float64 `json:"kv_cache_usage"`
}

// Pool is one pool of the snapshot: Healthy counts its endpoints in
// rotation, Endpoints is keyed by "host:port".
type Pool struct {
	Healthy   int                 `json:"healthy"`
	Endpoints map[string]Endpoint `json:"endpoints"`
}

// Snapshot is the part of sluice.upstreams the plugins read:
//
//	{"pools":{"vllm":{"healthy":2,"total":3,"endpoints":{"10.0.0.1:8000":{"healthy":true,
//	  "in_flight":2,"queue_depth":0,"kv_cache_usage":0.31,…},…},…},…}}
//
// Members it does not name are ignored. A Snapshot is not modified after
// Parse; it is safe to read from several goroutines.
type Snapshot struct {
	Pools map[string]Pool `json:"pools"`
}

// Parse decodes a sluice.upstreams value. The errors are prefixed with
// plugin, the name of the caller ("modelrouter: sluice.upstreams: …"),
// and name the fault: invalid JSON, or no "pools" object.
func Parse(plugin string, data []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: sluice.upstreams: %w", plugin, err)
	}
	if s.Pools == nil {
		return nil, errors.New(plugin + `: sluice.upstreams: no "pools" object`)
	}
	return &s, nil
}

// Healthy reports whether pool has an endpoint in rotation: its healthy
// count is positive or one of its endpoints is healthy. A pool missing
// from the snapshot is not healthy.
func (s *Snapshot) Healthy(pool string) bool {
	p, ok := s.Pools[pool]
	if !ok {
		return false
	}
	if p.Healthy > 0 {
		return true
	}
	for _, e := range p.Endpoints {
		if e.Healthy {
			return true
		}
	}
	return false
}
