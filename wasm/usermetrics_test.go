package wasm

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
)

func TestMetricSeries(t *testing.T) {
	tests := []struct {
		name string
		want string // "" for BAD_ARGUMENT
	}{
		{"requests_total", `sluice_wasm_requests_total{plugin="p"}`},
		{"custom_header_value_counts_value=foo_reporter=wasmgosdk",
			`sluice_wasm_custom_header_value_counts{plugin="p",reporter="wasmgosdk",value="foo"}`},
		{"wasmcustom.my_counter", `sluice_wasm_my_counter{plugin="p"}`},
		{"a.b.c", `sluice_wasm_a_b_c{plugin="p"}`},
		{"a-b:c d", `sluice_wasm_a_b_c_d{plugin="p"}`},
		{"x_k=v_with_underscores_k2=2", `sluice_wasm_x{plugin="p",k="v_with_underscores",k2="2"}`},
		{"x_k=", `sluice_wasm_x{plugin="p",k=""}`},
		{`x_k=a"b\c`, `sluice_wasm_x{plugin="p",k="a\"b\\c"}`},
		{"x_k=héllo", `sluice_wasm_x{plugin="p",k="héllo"}`},
		{"x_a.b=1", `sluice_wasm_x{plugin="p",a_b="1"}`},
		{"1st", `sluice_wasm_1st{plugin="p"}`},
		{"", ""},
		{"!!!", ""},
		{"___", ""},
		{"wasmcustom.", ""},
		{strings.Repeat("x", maxMetricName+1), ""},
		{"k=v", ""},        // a tag with no base name
		{"_k=v", ""},       // an empty base
		{"x_plugin=v", ""}, // reserved label
		{"x___k=v", `sluice_wasm_x__{plugin="p",k="v"}`}, // the last '_' starts the tag
		{"x_k=1___t=2", `sluice_wasm_x{plugin="p",k="1__",t="2"}`},
		{"x_..k=v", ""},   // tag name "__k" after sanitising
		{"x_1k=v", ""},    // tag name starting with a digit
		{"x_k=1_k=2", ""}, // repeated tag
		{"x_k=1=2", ""},   // a value with '=' and no tag name before it
		{"x_k=a\nb", ""},  // control character in a value
		{"x_k=v_-=w", ""}, // tag name without a letter or digit
		{"x_k=\xff", ""},  // not UTF-8
	}
	for _, tc := range tests {
		got, ok := metricSeries(nil, "p", []byte(tc.name))
		if (tc.want == "") == ok || string(got) != tc.want {
			t.Errorf("metricSeries(%q) = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
	tags := "x"
	for i := range maxMetricTags + 1 {
		tags += "_t" + string(rune('a'+i)) + "=v"
	}
	if got, ok := metricSeries(nil, "p", []byte(tags)); ok {
		t.Errorf("%d tags accepted: %s", maxMetricTags+1, got)
	}
	if got, ok := metricSeries(nil, `we"ird`, []byte("x")); !ok || string(got) != `sluice_wasm_x{plugin="we\"ird"}` {
		t.Errorf("plugin name escaping: %q %v", got, ok)
	}
}

// FuzzMetricSeries: any name maps to a series VictoriaMetrics accepts, or
// is refused; never a panic.
func FuzzMetricSeries(f *testing.F) {
	for _, s := range []string{"a", "a_b=c", "wasmcustom.a.b", "a_b=c_d=e", "x_k=\"\\\n", "_=_=_", "a_b==c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, ok := metricSeries(nil, "plugin", []byte(name))
		if !ok {
			if len(got) != 0 {
				t.Fatalf("refused %q but wrote %q", name, got)
			}
			return
		}
		if err := metrics.ValidateMetric(string(got)); err != nil || !utf8.Valid(got) {
			t.Fatalf("%q -> invalid series %q: %v", name, got, err)
		}
		if !strings.HasPrefix(string(got), UserMetricPrefix) {
			t.Fatalf("%q -> %q lacks the prefix", name, got)
		}
	})
}

func TestUserMetricValues(t *testing.T) {
	var r metricRegistry
	r.init(metrics.NewSet())
	c, _ := r.getOrCreate(metricCounter, `sluice_wasm_c{plugin="p"}`)
	g, _ := r.getOrCreate(metricGauge, `sluice_wasm_g{plugin="p"}`)
	h, _ := r.getOrCreate(metricHistogram, `sluice_wasm_h{plugin="p"}`)
	if _, st := r.getOrCreate(metricGauge, `sluice_wasm_c{plugin="p"}`); st != statusBadArgument {
		t.Errorf("redefining a counter as a gauge: %d", st)
	}
	if again, _ := r.getOrCreate(metricCounter, `sluice_wasm_c{plugin="p"}`); again != c {
		t.Error("the same series gave another metric")
	}
	steps := []struct {
		m     *userMetric
		inc   bool
		v     int64
		st    status
		value uint64
	}{
		{c, true, 5, statusOK, 5},
		{c, true, -1, statusBadArgument, 5},
		{c, false, 3, statusOK, 8}, // record adds to a counter, as in Envoy
		{c, false, -1, statusBadArgument, 8},
		{g, true, 4, statusOK, 4},
		{g, true, -6, statusOK, uint64(1<<64 - 2)}, // -2
		{g, false, 7, statusOK, 7},
		{g, false, -3, statusOK, uint64(1<<64 - 3)},
		{h, true, 1, statusBadArgument, 0},
		{h, false, 10, statusOK, 1},
		{h, false, 0, statusOK, 2},
	}
	for i, s := range steps {
		var st status
		if s.inc {
			st = s.m.increment(s.v)
		} else {
			st = s.m.record(uint64(s.v))
		}
		if st != s.st || s.m.value() != s.value {
			t.Errorf("step %d: status %d value %d, want %d %d", i, st, s.m.value(), s.st, s.value)
		}
	}
}
