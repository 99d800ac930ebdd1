package main

import (
	"encoding/json"
	"fmt"
)

// upstreams is the part of the host's sluice.upstreams property this plugin
// reads:
//
//	{"pools":{"stable":{"healthy":2,"total":3,"endpoints":{"10.0.0.1:8000":{"healthy":true,…},…}},…}}
type upstreams struct {
	Pools map[string]struct {
		Healthy   int `json:"healthy"`
		Endpoints map[string]struct {
			Healthy bool `json:"healthy"`
		} `json:"endpoints"`
	} `json:"pools"`
}

// parseUpstreams returns a health function over a sluice.upstreams
// snapshot: a pool is healthy when it has an endpoint in rotation; a pool
// missing from the snapshot is not.
func parseUpstreams(data []byte) (health, error) {
	var u upstreams
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("modelrouter: sluice.upstreams: %w", err)
	}
	if u.Pools == nil {
		return nil, fmt.Errorf(`modelrouter: sluice.upstreams: no "pools" object`)
	}
	return func(pool string) (bool, bool) {
		p, ok := u.Pools[pool]
		if !ok {
			return false, true
		}
		if p.Healthy > 0 {
			return true, true
		}
		for _, e := range p.Endpoints {
			if e.Healthy {
				return true, true
			}
		}
		return false, true
	}, nil
}

// unknownHealth is the health function when the host offers no snapshot:
// every pool counts as possibly healthy.
func unknownHealth(string) (bool, bool) { return false, false }
