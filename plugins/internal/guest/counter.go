//go:build wasip1

package guest

import "github.com/sluice-proxy/sluice/plugins/sdk"

// Counter is a host counter metric, defined once at start-up (in
// OnPluginStart), never per request. A host without metrics support
// leaves it off: Inc then does nothing. The zero Counter is off. Like
// everything in a guest, it is used by one callback at a time.
type Counter struct {
	c  sdk.Counter
	ok bool
}

// NewCounter defines the counter name. Envoy's tag form
// ("name_tag=value") becomes a Prometheus label in Sluice. A host that
// refuses the definition leaves the counter off, logged at debug level.
func NewCounter(metric string) Counter {
	c, err := sdk.DefineCounterMetric(metric)
	if err != nil {
		sdk.LogDebugf("%s: metric %q is off: %v", name, metric, err)
		return Counter{}
	}
	return Counter{c: c, ok: true}
}

// Inc adds n; an error from the host is ignored (a metric is not worth
// failing a request for).
func (c Counter) Inc(n uint64) {
	if c.ok {
		_ = c.c.Increment(n)
	}
}
