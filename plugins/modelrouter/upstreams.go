package main

import "github.com/sluice-proxy/sluice/plugins/internal/upstreams"

// parseUpstreams returns a health function over a sluice.upstreams
// snapshot: a pool is healthy when it has an endpoint in rotation; a pool
// missing from the snapshot is not.
func parseUpstreams(data []byte) (health, error) {
	s, err := upstreams.Parse("modelrouter", data)
	if err != nil {
		return nil, err
	}
	return func(pool string) (bool, bool) { return s.Healthy(pool), true }, nil
}

// unknownHealth is the health function when the host offers no snapshot:
// every pool counts as possibly healthy.
func unknownHealth(string) (bool, bool) { return false, false }
