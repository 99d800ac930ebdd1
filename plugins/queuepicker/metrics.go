//go:build wasip1

package main

import "github.com/sluice-proxy/sluice/plugins/sdk"

// counter is a host counter metric, defined once at start-up. A host
// without metrics support leaves it off: inc then does nothing.
type counter struct {
	c  sdk.Counter
	ok bool
}

// defineCounter defines the counter name. Envoy's tag form
// ("name_tag=value") becomes a Prometheus label in Sluice.
func defineCounter(name string) counter {
	c, err := sdk.DefineCounterMetric(name)
	if err != nil {
		sdk.LogDebugf("queuepicker: metric %q is off: %v", name, err)
		return counter{}
	}
	return counter{c: c, ok: true}
}

// inc adds n.
func (c counter) inc(n uint64) {
	if c.ok {
		_ = c.c.Increment(n)
	}
}
