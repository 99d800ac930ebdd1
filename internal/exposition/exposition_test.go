package exposition

import (
	"bytes"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func init() {
	Describe(map[string]string{"exptest_requests_total": "Requests.", "exptest_seconds": "Latency."})
	DescribePrefix("exptest_user_", "Short prefix.")
	DescribePrefix("exptest_user_plugin_", "Long prefix.")
}

// TestWriteCompletesMetadata: the library's bare "# HELP family" lines get
// the registered texts (by name, else by the longest prefix, else the
// undescribed text); TYPE lines are fixed where the library's type is
// wrong; families breaking Prometheus's naming rules are left out whole.
func TestWriteCompletesMetadata(t *testing.T) {
	set := metrics.NewSet()
	set.NewCounter(`exptest_requests_total{code="200"}`).Inc()
	set.NewPrometheusHistogramExt("exptest_seconds", LatencyBuckets).Update(0.3)
	set.NewGauge("exptest_user_plugin_x", func() float64 { return 2 })
	set.NewGauge("exptest_user_y", func() float64 { return 3 })
	set.NewGauge("exptest_nobody", func() float64 { return 4 })
	set.NewGauge(`process_io_read_bytes_total`, func() float64 { return 5 })
	set.NewCounter(`go_cgo_calls_count`).Inc()
	var b strings.Builder
	Write(&b, set.WritePrometheus)
	got := b.String()
	for _, want := range []string{
		"# HELP exptest_requests_total Requests.\n# TYPE exptest_requests_total counter\nexptest_requests_total{code=\"200\"} 1\n",
		"# HELP exptest_seconds Latency.\n# TYPE exptest_seconds histogram\n",
		"exptest_seconds_bucket{le=\"0.5\"} 1\n",
		"# HELP exptest_user_plugin_x Long prefix.\n",
		"# HELP exptest_user_y Short prefix.\n",
		"# HELP exptest_nobody " + undescribed + "\n",
		"# TYPE process_io_read_bytes_total counter\nprocess_io_read_bytes_total 5\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "go_cgo_calls_count") {
		t.Errorf("a dropped family was written:\n%s", got)
	}
}

// TestRuntimeMetricsDescribed: every go_* and process_* family the
// library writes has its own HELP text, none is undescribed.
func TestRuntimeMetricsDescribed(t *testing.T) {
	var b strings.Builder
	Write(&b, WriteRuntime)
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if !strings.HasPrefix(l, "# HELP ") {
			continue
		}
		n++
		if f := strings.Fields(l); len(f) < 4 || strings.Contains(l, undescribed) {
			t.Errorf("no help text: %q", l)
		}
	}
	if n < 30 {
		t.Fatalf("%d runtime families, want the library's go_* and process_* (30+)", n)
	}
}

// TestDescribePanics: a bad text or a conflicting second text is a
// programmer error caught at start-up.
func TestDescribePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"empty text":     func() { Describe(map[string]string{"exptest_a": ""}) },
		"line break":     func() { Describe(map[string]string{"exptest_b": "a\nb"}) },
		"other text":     func() { Describe(map[string]string{"exptest_requests_total": "Other."}) },
		"empty prefix":   func() { DescribePrefix("", "x") },
		"backslash text": func() { DescribePrefix("exptest_c", `a\b`) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	Describe(map[string]string{"exptest_requests_total": "Requests."}) // the same text again is fine
}

// FuzzRewrite: any input is copied without a panic, every sample line of
// a family that is not dropped is kept, and every HELP line gets a text.
func FuzzRewrite(f *testing.F) {
	f.Add([]byte("# HELP a\n# TYPE a counter\na 1\n"))
	f.Add([]byte("# HELP go_cgo_calls_count\n# TYPE go_cgo_calls_count counter\ngo_cgo_calls_count 0\nb{x=\"y\"} 2"))
	f.Add([]byte("# HELP \n# TYPE \n#\n\n{ 1\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		var out bytes.Buffer
		rewrite(&out, src)
		lines := map[string]bool{}
		for _, l := range strings.Split(out.String(), "\n") {
			lines[l] = true
			if strings.HasPrefix(l, "# HELP ") && len(strings.SplitN(l, " ", 4)) < 4 {
				t.Fatalf("HELP line without text: %q", l)
			}
		}
		for _, l := range strings.Split(string(src), "\n") {
			if l != "" && l[0] != '#' && !dropped[sampleName([]byte(l))] && !lines[l] {
				t.Fatalf("sample line %q lost", l)
			}
		}
	})
}
