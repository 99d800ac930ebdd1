package wasm

import (
	"bytes"
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-proxy/sluice/internal/exposition"
)

// Plugin-defined metrics (proxy_define_metric and friends), exported in
// HostConfig.Metrics. The name mapping is described in doc.go ("Plugin
// metrics") and implemented by metricSeries.

// Metric types (proxy_metric_type_t).
const (
	metricCounter   = 0
	metricGauge     = 1
	metricHistogram = 2
)

// Limits of plugin-defined metrics.
const (
	// UserMetricPrefix starts the name of every plugin-defined metric.
	UserMetricPrefix = "sluice_wasm_"
	// maxMetricName caps a name as the plugin sends it.
	maxMetricName = 256
	// maxMetricTags caps the tags extracted from one name.
	maxMetricTags = 16
	// maxMetricsPerPlugin caps the distinct series one plugin defines
	// (defining more is INTERNAL_FAILURE): names built from request data
	// would otherwise grow /metrics without bound.
	maxMetricsPerPlugin = 1024
)

// userMetric is one plugin-defined series. Safe for concurrent use.
type userMetric struct {
	kind    uint32
	counter *metrics.Counter
	gauge   *metrics.Gauge
	hist    *metrics.PrometheusHistogram
	count   atomic.Uint64 // histogram observations, for proxy_get_metric
}

// metricRegistry holds every plugin-defined series of a Host by series
// name, so that two plugins (or a reloaded plugin) asking for the same
// series with another type are refused instead of panicking in the set.
type metricRegistry struct {
	set    *metrics.Set
	mu     sync.Mutex
	byName map[string]*userMetric
}

func (r *metricRegistry) init(set *metrics.Set) {
	r.set = set
	r.byName = make(map[string]*userMetric)
}

// getOrCreate returns the series name of the given type, creating it in
// the set; BAD_ARGUMENT if it exists with another type.
func (r *metricRegistry) getOrCreate(kind uint32, series string) (*userMetric, status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.byName[series]; m != nil {
		if m.kind != kind {
			return nil, statusBadArgument
		}
		return m, statusOK
	}
	m := &userMetric{kind: kind}
	switch kind {
	case metricCounter:
		m.counter = r.set.GetOrCreateCounter(series)
	case metricGauge:
		m.gauge = r.set.GetOrCreateGauge(series, nil)
	default:
		m.hist = r.set.GetOrCreatePrometheusHistogramExt(series, exposition.ValueBuckets)
	}
	r.byName[series] = m
	return m, statusOK
}

// pluginMetricTable maps one plugin's metric ids (1, 2, …) to series. All
// its instances share it. Lookups by id take no lock and allocate nothing.
type pluginMetricTable struct {
	mu  sync.Mutex
	ids map[string]uint32 // series → id
	tab atomic.Pointer[[]*userMetric]
}

// define returns the id of the plugin's metric name of type kind.
func (p *Plugin) defineMetric(kind uint32, name []byte) (uint32, status) {
	if kind > metricHistogram {
		return 0, statusBadArgument
	}
	series, ok := metricSeries(nil, p.name, name)
	if !ok {
		return 0, statusBadArgument
	}
	t := &p.userMetrics
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[string(series)]; id != 0 && ok {
		if (*t.tab.Load())[id-1].kind != kind {
			return 0, statusBadArgument
		}
		return id, statusOK
	}
	var old []*userMetric
	if tp := t.tab.Load(); tp != nil {
		old = *tp
	}
	if len(old) >= maxMetricsPerPlugin {
		return 0, statusInternalFailure
	}
	m, st := p.host.userMetrics.getOrCreate(kind, string(series))
	if st != statusOK {
		return 0, st
	}
	tab := append(old[:len(old):len(old)], m)
	if t.ids == nil {
		t.ids = make(map[string]uint32)
	}
	id := uint32(len(tab))
	t.ids[string(series)] = id
	t.tab.Store(&tab)
	return id, statusOK
}

// metric returns the plugin's metric id, or nil.
func (p *Plugin) metric(id uint32) *userMetric {
	tp := p.userMetrics.tab.Load()
	if tp == nil || id == 0 || uint64(id) > uint64(len(*tp)) {
		return nil
	}
	return (*tp)[id-1]
}

// increment implements proxy_increment_metric: counters take deltas >= 0,
// gauges any delta, histograms none.
func (m *userMetric) increment(delta int64) status {
	switch m.kind {
	case metricCounter:
		if delta < 0 {
			return statusBadArgument
		}
		m.counter.AddInt64(delta)
	case metricGauge:
		m.gauge.Add(float64(delta))
	default:
		return statusBadArgument
	}
	return statusOK
}

// record implements proxy_record_metric: a counter adds value (as Envoy
// does), a gauge is set to value read as a signed int64, a histogram
// records an observation.
func (m *userMetric) record(value uint64) status {
	switch m.kind {
	case metricCounter:
		if value > math.MaxInt64 {
			return statusBadArgument
		}
		m.counter.AddInt64(int64(value))
	case metricGauge:
		m.gauge.Set(float64(int64(value)))
	default:
		m.hist.Update(float64(value))
		m.count.Add(1)
	}
	return statusOK
}

// value implements proxy_get_metric: a counter's value, a gauge's as a
// signed int64, a histogram's number of observations.
func (m *userMetric) value() uint64 {
	switch m.kind {
	case metricCounter:
		return m.counter.Get()
	case metricGauge:
		return uint64(int64(m.gauge.Get()))
	}
	return m.count.Load()
}

// metricSeries appends to dst the series a plugin's metric name maps to:
//
//	UserMetricPrefix + base + {plugin="<plugin>",tag="value",…}
//
// An optional "wasmcustom." prefix (Envoy's namespace for plugin metrics)
// is dropped. Tags are extracted as Envoy's tag extraction writes them,
// "<base>_<tag1>=<value1>_<tag2>=<value2>": a tag name runs from the last
// '_' before an '=' to that '=', and a value to the '_' before the next
// tag name. The base and tag names keep ASCII letters, digits and '_';
// every other byte ('.', '-', ':', …) becomes '_'. Labels are sorted by
// name after plugin. It reports false (BAD_ARGUMENT for the plugin) for an
// empty name, one over maxMetricName bytes or not UTF-8, a base or tag
// name with no letter or digit, a tag name starting with a digit or "__",
// the reserved tag name "plugin", a repeated tag, more than maxMetricTags
// tags, or a value with a control character.
func metricSeries(dst []byte, plugin string, name []byte) ([]byte, bool) {
	if len(name) == 0 || len(name) > maxMetricName || !utf8.Valid(name) {
		return dst, false
	}
	name = bytes.TrimPrefix(name, []byte("wasmcustom."))
	base, rest := name, []byte(nil)
	if eq := bytes.IndexByte(name, '='); eq >= 0 {
		us := bytes.LastIndexByte(name[:eq], '_')
		if us < 0 {
			return dst, false
		}
		base, rest = name[:us], name[us+1:]
	}
	type tag struct{ name, value []byte }
	var tags []tag
	for len(rest) > 0 {
		eq := bytes.IndexByte(rest, '=')
		if eq < 0 || len(tags) == maxMetricTags {
			return dst, false
		}
		t := tag{name: sanitizeMetricName(rest[:eq])}
		after := rest[eq+1:]
		if next := bytes.IndexByte(after, '='); next < 0 {
			t.value, rest = after, nil
		} else {
			us := bytes.LastIndexByte(after[:next], '_')
			if us < 0 {
				return dst, false
			}
			t.value, rest = after[:us], after[us+1:]
		}
		if !validTagName(t.name) || bytes.ContainsFunc(t.value, isControl) {
			return dst, false
		}
		tags = append(tags, t)
	}
	slices.SortFunc(tags, func(a, b tag) int { return bytes.Compare(a.name, b.name) })
	for i := 1; i < len(tags); i++ {
		if bytes.Equal(tags[i].name, tags[i-1].name) {
			return dst, false
		}
	}
	b := sanitizeMetricName(base)
	if !hasAlnum(b) {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, UserMetricPrefix...)
	dst = append(dst, b...)
	dst = append(dst, `{plugin="`...)
	dst = appendLabelValue(dst, []byte(plugin))
	dst = append(dst, '"')
	for _, t := range tags {
		dst = append(dst, ',')
		dst = append(dst, t.name...)
		dst = append(dst, `="`...)
		dst = appendLabelValue(dst, t.value)
		dst = append(dst, '"')
	}
	dst = append(dst, '}')
	if metrics.ValidateMetric(string(dst[start:])) != nil {
		return dst[:start], false
	}
	return dst, true
}

// sanitizeMetricName returns a copy of b with every byte other than an
// ASCII letter, digit or '_' replaced by '_'.
func sanitizeMetricName(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			out[i] = c
		} else {
			out[i] = '_'
		}
	}
	return out
}

func hasAlnum(b []byte) bool {
	return bytes.ContainsFunc(b, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	})
}

func validTagName(n []byte) bool {
	return hasAlnum(n) && !(n[0] >= '0' && n[0] <= '9') && !bytes.HasPrefix(n, []byte("__")) &&
		string(n) != "plugin"
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// appendLabelValue appends v escaped for a Prometheus label value.
func appendLabelValue(dst, v []byte) []byte {
	for _, c := range v {
		switch c {
		case '\\', '"':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func hostDefineMetric(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	name, retID := a.bytes(1), a.retU32(3)
	if a.refused() {
		return
	}
	id, st := a.in.p.defineMetric(u32(stack[0]), name)
	stack[0] = uint64(thenWriteU32(st, a.mem, retID, id))
}

// metricOf returns the calling instance and the metric whose id is in
// stack[0]. When either is missing it writes the status (INTERNAL_FAILURE,
// NOT_FOUND) to stack[0] and returns a nil metric.
func metricOf(ctx context.Context, stack []uint64) (*instance, *userMetric) {
	in := callerOf(ctx, stack)
	if in == nil {
		return nil, nil
	}
	m := in.p.metric(u32(stack[0]))
	if m == nil {
		stack[0] = uint64(statusNotFound)
	}
	return in, m
}

func hostIncrementMetric(ctx context.Context, _ api.Module, stack []uint64) {
	_, m := metricOf(ctx, stack)
	if m == nil {
		return
	}
	stack[0] = uint64(m.increment(int64(stack[1])))
}

func hostRecordMetric(ctx context.Context, _ api.Module, stack []uint64) {
	_, m := metricOf(ctx, stack)
	if m == nil {
		return
	}
	stack[0] = uint64(m.record(stack[1]))
}

func hostGetMetric(ctx context.Context, mod api.Module, stack []uint64) {
	in, m := metricOf(ctx, stack)
	if m == nil {
		return
	}
	stack[0] = uint64(accessStatus(writeGuestU64(in.memOf(mod), u32(stack[1]), m.value())))
}
