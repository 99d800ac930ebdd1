//go:build wasip1

package sdk

import "fmt"

// Metrics live in the host and are shared by every instance of the plugin.
// Define them once, in OnVMStart or OnPluginStart, and keep the handle;
// defining the same name again returns the same metric.

// Counter is a host counter metric. Its zero value is not usable.
type Counter struct{ id uint32 }

// Gauge is a host gauge metric. Its zero value is not usable.
type Gauge struct{ id uint32 }

// Histogram is a host histogram metric. Its zero value is not usable.
type Histogram struct{ id uint32 }

func defineMetric(t MetricType, name string) (uint32, error) {
	var id uint32
	err := hostError("proxy_define_metric", proxyDefineMetric(uint32(t), stringPtr(name), uint32(len(name)), &id))
	return id, err
}

func getMetric(id uint32) (uint64, error) {
	var v uint64
	err := hostError("proxy_get_metric", proxyGetMetric(id, &v))
	return v, err
}

// DefineCounterMetric defines (or looks up) the counter name.
func DefineCounterMetric(name string) (Counter, error) {
	id, err := defineMetric(MetricCounter, name)
	return Counter{id: id}, err
}

// Increment adds delta to the counter. delta above 2^63-1 is an error
// wrapping ErrBadArgument (the ABI carries it as a signed i64).
func (c Counter) Increment(delta uint64) error {
	if delta > 1<<63-1 {
		return fmt.Errorf("sdk: counter delta %d exceeds 2^63-1: %w", delta, ErrBadArgument)
	}
	return hostError("proxy_increment_metric", proxyIncrementMetric(c.id, int64(delta)))
}

// Get returns the counter's value.
func (c Counter) Get() (uint64, error) { return getMetric(c.id) }

// DefineGaugeMetric defines (or looks up) the gauge name.
func DefineGaugeMetric(name string) (Gauge, error) {
	id, err := defineMetric(MetricGauge, name)
	return Gauge{id: id}, err
}

// Increment adds delta (which may be negative) to the gauge.
func (g Gauge) Increment(delta int64) error {
	return hostError("proxy_increment_metric", proxyIncrementMetric(g.id, delta))
}

// Record sets the gauge to value.
func (g Gauge) Record(value int64) error {
	return hostError("proxy_record_metric", proxyRecordMetric(g.id, uint64(value)))
}

// Get returns the gauge's value.
func (g Gauge) Get() (int64, error) {
	v, err := getMetric(g.id)
	return int64(v), err
}

// DefineHistogramMetric defines (or looks up) the histogram name.
func DefineHistogramMetric(name string) (Histogram, error) {
	id, err := defineMetric(MetricHistogram, name)
	return Histogram{id: id}, err
}

// Record adds an observation to the histogram.
func (h Histogram) Record(value uint64) error {
	return hostError("proxy_record_metric", proxyRecordMetric(h.id, value))
}

// Get returns what the host reports for the histogram (host-defined).
func (h Histogram) Get() (uint64, error) { return getMetric(h.id) }
