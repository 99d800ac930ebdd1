// Package exposition makes Sluice's /metrics a valid, lint-clean Prometheus
// text exposition: every family gets a "# HELP" text and a "# TYPE" line
// (promtool check metrics), the Go runtime and process metrics are
// written next to Sluice's own, and the latency histograms share bucket
// bounds fitting LLM traffic.
//
// VictoriaMetrics/metrics writes "# HELP family" and "# TYPE family type"
// before each family once metadata is on (metrics.ExposeMetadata, turned
// on by this package's init for the whole process), but it has no place
// for the help text itself: the packages that define metrics register
// their families' texts here (Describe), and Write fills them in while
// copying a scrape.
package exposition

import (
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

func init() { metrics.ExposeMetadata(true) }

// registry holds the help texts. Packages fill it at init; scrapes read
// it under the read lock.
var registry = struct {
	sync.RWMutex
	help     map[string]string
	prefixes []prefixHelp
}{help: make(map[string]string)}

type prefixHelp struct{ prefix, help string }

// Describe registers the HELP texts of metric families (family name →
// text). Call it from an init function of the package that creates the
// metrics. An empty text, a text with a line break, or a family already
// registered with another text is a programmer error: Describe panics
// with a message naming it. Safe for concurrent use.
func Describe(help map[string]string) {
	registry.Lock()
	defer registry.Unlock()
	for family, text := range help {
		mustValidText(family, text)
		if old, ok := registry.help[family]; ok && old != text {
			panic("exposition: family " + family + " described twice with different texts")
		}
		registry.help[family] = text
	}
}

// DescribePrefix registers the HELP text of every family whose name
// starts with prefix and which has no text of its own (for names chosen
// at run time, such as plugin-defined metrics). The longest matching
// prefix wins. It panics like Describe. Safe for concurrent use.
func DescribePrefix(prefix, text string) {
	mustValidText(prefix, text)
	registry.Lock()
	defer registry.Unlock()
	registry.prefixes = append(registry.prefixes, prefixHelp{prefix, text})
}

func mustValidText(name, text string) {
	if name == "" || text == "" || strings.ContainsAny(text, "\n\\") {
		panic("exposition: bad help text for " + name + ": " + strconvQuote(text))
	}
}

// Help returns the HELP text of family and whether one is registered
// (by name or by prefix).
func Help(family string) (string, bool) {
	registry.RLock()
	defer registry.RUnlock()
	if h, ok := registry.help[family]; ok {
		return h, true
	}
	best := -1
	for i, p := range registry.prefixes {
		if strings.HasPrefix(family, p.prefix) && (best < 0 || len(p.prefix) > len(registry.prefixes[best].prefix)) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return registry.prefixes[best].help, true
}

// undescribed is the HELP text of a family nobody described. Tests assert
// that no family of a real scrape gets it.
const undescribed = "Undescribed Sluice metric."

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Write calls write with a buffer, then copies what it wrote to w with
// every metadata line completed: "# HELP family" gets the registered
// text, "# TYPE" lines are corrected where the library's are wrong
// (typeFixes), and the families the library names against Prometheus's
// naming rules are left out (dropped). Safe for concurrent use; it is
// meant for scrapes, not for the request path (it allocates).
func Write(w io.Writer, write func(io.Writer)) {
	in := bufs.Get().(*bytes.Buffer)
	out := bufs.Get().(*bytes.Buffer)
	defer func() {
		in.Reset()
		out.Reset()
		bufs.Put(in)
		bufs.Put(out)
	}()
	write(in)
	rewrite(out, in.Bytes())
	_, _ = w.Write(out.Bytes())
}

// rewrite copies the exposition src to out line by line, completing the
// metadata.
func rewrite(out *bytes.Buffer, src []byte) {
	for line := range bytes.Lines(src) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		switch {
		case bytes.HasPrefix(line, []byte("# HELP ")):
			family, rest, _ := strings.Cut(string(line[len("# HELP "):]), " ")
			if dropped[family] {
				continue
			}
			if rest == "" {
				if h, ok := Help(family); ok {
					rest = h
				} else {
					rest = undescribed
				}
			}
			out.WriteString("# HELP " + family + " " + rest + "\n")
			continue
		case bytes.HasPrefix(line, []byte("# TYPE ")):
			family, typ, _ := strings.Cut(string(line[len("# TYPE "):]), " ")
			if dropped[family] {
				continue
			}
			if t, ok := typeFixes[family]; ok {
				typ = t
			}
			out.WriteString("# TYPE " + family + " " + typ + "\n")
			continue
		case len(line) > 0 && line[0] != '#':
			if dropped[sampleName(line)] {
				continue
			}
		}
		out.Write(line)
		out.WriteByte('\n')
	}
}

// sampleName returns the metric name of a sample line.
func sampleName(line []byte) string {
	if i := bytes.IndexAny(line, "{ "); i >= 0 {
		line = line[:i]
	}
	return string(line)
}

func strconvQuote(s string) string { return "\"" + strings.ReplaceAll(s, "\n", `\n`) + "\"" }
