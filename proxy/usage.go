package proxy

import (
	"bytes"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/exposition"
	"github.com/sluice-proxy/sluice/proxy/internal/jsonspan"
	"github.com/valyala/fastjson"
)

// Token usage and stream latency per model, read from responses as they
// pass and never by holding them back:
//
//   - an OpenAI JSON answer's usage.prompt_tokens and
//     usage.completion_tokens are read, at the end of the body, from its
//     last maxUsageTail bytes (OpenAI, vLLM, SGLang and TGI put usage
//     after the choices): the last "usage": {…} there that parses
//     (fastjson) with both counts;
//   - an SSE stream is scanned line by line as chunks go by; a line split
//     across chunks is carried over (at most maxSSELine bytes; a longer
//     line is skipped, and a usage chunk is never that long). A data line
//     that mentions "usage" is parsed with fastjson, and its top-level
//     usage read. The last event with a usage object wins (vLLM's
//     continuous usage stats repeat a running total in every chunk).
//
// Sluice does not add stream_options.include_usage to requests: a stream
// whose client did not ask for usage has none, and counts in
// sluice_responses_without_usage_total instead of the token counters.
//
// Label values are bounded: the models the configuration names (pools'
// models and aliases, routes' exact models) have their own series; with
// no pool listing models, the first maxLearnedModels names seen are
// learnt; everything else is model="other".

const (
	maxUsageTail     = 8 << 10
	maxSSELine       = 16 << 10
	maxLearnedModels = 16
	otherModel       = "other"
)

// modelMetrics are one model's series, found or created by name in the
// set every generation shares (reload.go).
type modelMetrics struct {
	prompt     *metrics.Counter             // sluice_tokens_total{model,kind="prompt"}
	completion *metrics.Counter             // sluice_tokens_total{model,kind="completion"}
	noUsage    *metrics.Counter             // sluice_responses_without_usage_total{model}
	ttft       *metrics.PrometheusHistogram // sluice_time_to_first_token_seconds{model}
	interval   *metrics.PrometheusHistogram // sluice_stream_event_interval_seconds{model}
}

func newModelMetrics(set *metrics.Set, name string) *modelMetrics {
	l := `model="` + escapeLabel(name) + `"`
	return &modelMetrics{
		prompt:     set.GetOrCreateCounter(`sluice_tokens_total{` + l + `,kind="prompt"}`),
		completion: set.GetOrCreateCounter(`sluice_tokens_total{` + l + `,kind="completion"}`),
		noUsage:    set.GetOrCreateCounter(`sluice_responses_without_usage_total{` + l + `}`),
		ttft:       set.GetOrCreatePrometheusHistogramExt(`sluice_time_to_first_token_seconds{`+l+`}`, exposition.LatencyBuckets),
		interval:   set.GetOrCreatePrometheusHistogramExt(`sluice_stream_event_interval_seconds{`+l+`}`, exposition.IntervalBuckets),
	}
}

// modelMetricSet finds a model's series. Lookups read an immutable map
// through an atomic pointer: no lock on the request path. Learning a name
// copies the map under mu (at most maxLearnedModels times).
type modelMetricSet struct {
	set   *metrics.Set
	known atomic.Pointer[map[string]*modelMetrics]
	other *modelMetrics
	learn bool
	mu    sync.Mutex
	names []string // the learnt names, in order (mu)
}

func newModelMetricSet(set *metrics.Set, cfg *Config) *modelMetricSet {
	names := map[string]bool{}
	declared := false
	for _, u := range cfg.Upstreams {
		declared = declared || u.DeclaresModels()
		for _, m := range u.Models {
			if m != "*" {
				names[m] = true
			}
		}
		for alias := range u.ModelAliases {
			names[alias] = true
		}
	}
	for _, r := range cfg.Routes {
		if m := r.Match.Model; m != "" && m[len(m)-1] != '*' {
			names[m] = true
		}
	}
	delete(names, otherModel)
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	ms := &modelMetricSet{set: set, learn: !declared}
	m := make(map[string]*modelMetrics, len(sorted))
	for _, n := range sorted {
		m[n] = newModelMetrics(set, n)
	}
	ms.known.Store(&m)
	ms.other = newModelMetrics(set, otherModel)
	return ms
}

// lookup returns name's series.
func (ms *modelMetricSet) lookup(name []byte) *modelMetrics {
	if mm := (*ms.known.Load())[string(name)]; mm != nil {
		return mm
	}
	if !ms.learn {
		return ms.other
	}
	return ms.learnName(string(name))
}

func (ms *modelMetricSet) learnName(name string) *modelMetrics {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	old := *ms.known.Load()
	if mm := old[name]; mm != nil {
		return mm
	}
	if len(ms.names) >= maxLearnedModels || name == otherModel || name == "" || len(name) > 256 {
		return ms.other
	}
	m := make(map[string]*modelMetrics, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	mm := newModelMetrics(ms.set, name)
	m[name] = mm
	ms.names = append(ms.names, name)
	ms.known.Store(&m)
	return mm
}

// inherit learns, in order, the names the previous generation learnt
// (its series are in the same set), so that reloads do not learn
// maxLearnedModels more names each: the cap holds for the process, not
// for one generation. A name the new configuration declares stays
// declared. Safe while prev still learns.
func (ms *modelMetricSet) inherit(prev *modelMetricSet) {
	if !ms.learn {
		return
	}
	prev.mu.Lock()
	names := append([]string(nil), prev.names...)
	prev.mu.Unlock()
	for _, n := range names {
		ms.learnName(n)
	}
}

// usageTracker follows one response's body. It belongs to the request's
// pooled state; the reader of the response body is its only user.
type usageTracker struct {
	mm        *modelMetrics // nil: not tracking
	start     time.Time
	sse       bool
	firstSeen bool
	ttft      time.Duration // set with firstSeen
	lastEvent time.Time
	carry     []byte // an SSE line split across chunks
	skipLine  bool   // dropping an over-long line up to its end
	tail      []byte // the last bytes of a JSON body

	// parser parses an SSE line or a usage object found in the tail: at
	// most maxSSELine bytes, so what it keeps between requests is bounded.
	parser fastjson.Parser

	prompt, completion uint64
	haveUsage          bool
}

func (u *usageTracker) reset() {
	u.mm = nil
	u.sse, u.firstSeen, u.skipLine, u.haveUsage = false, false, false, false
	u.lastEvent = time.Time{}
	u.carry, u.tail = u.carry[:0], u.tail[:0]
	u.prompt, u.completion = 0, 0
}

// begin starts tracking a 2xx response to a request for a model.
func (u *usageTracker) begin(mm *modelMetrics, start time.Time, sse bool) {
	u.mm, u.start, u.sse = mm, start, sse
}

// observe looks at a chunk of the upstream's body on its way out.
func (u *usageTracker) observe(b []byte) {
	if u.mm == nil || len(b) == 0 {
		return
	}
	if !u.sse {
		u.keepTail(b)
		return
	}
	now := time.Now()
	if !u.firstSeen {
		u.firstSeen = true
		u.ttft = now.Sub(u.start)
		u.mm.ttft.Update(u.ttft.Seconds())
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			u.carryOver(b)
			return
		}
		line := b[:i]
		b = b[i+1:]
		if u.skipLine {
			u.skipLine = false
			continue
		}
		if len(u.carry) > 0 {
			if len(u.carry)+len(line) > maxSSELine {
				u.carry = u.carry[:0]
				continue
			}
			u.carry = append(u.carry, line...)
			u.sseLine(u.carry, now)
			u.carry = u.carry[:0]
			continue
		}
		u.sseLine(line, now)
	}
}

func (u *usageTracker) carryOver(b []byte) {
	if u.skipLine {
		return
	}
	if len(u.carry)+len(b) > maxSSELine {
		u.carry = u.carry[:0]
		u.skipLine = true
		return
	}
	u.carry = append(u.carry, b...)
}

var (
	strData  = []byte("data:")
	strDone  = []byte("[DONE]")
	strUsage = []byte(`"usage"`)
)

// sseLine handles one complete SSE line.
func (u *usageTracker) sseLine(l []byte, now time.Time) {
	if !bytes.HasPrefix(l, strData) {
		return
	}
	d := bytes.Trim(l[len(strData):], " \t\r")
	if len(d) == 0 || bytes.Equal(d, strDone) {
		return
	}
	if !u.lastEvent.IsZero() {
		u.mm.interval.Update(now.Sub(u.lastEvent).Seconds())
	}
	u.lastEvent = now
	if len(d) > maxSSELine || !bytes.Contains(d, strUsage) {
		return // a line within one chunk is not bounded by carryOver
	}
	v, err := u.parser.ParseBytes(d)
	if err != nil {
		return
	}
	u.readUsage(lastMember(v, "usage"))
}

// readUsage reads prompt_tokens and completion_tokens from a usage
// object; null or anything without both leaves the last usage in place.
func (u *usageTracker) readUsage(usage *fastjson.Value) {
	p, okP := tokenCount(lastMember(usage, "prompt_tokens"))
	c, okC := tokenCount(lastMember(usage, "completion_tokens"))
	if okP && okC {
		u.prompt, u.completion, u.haveUsage = p, c, true
	}
}

// tokenCount reads a count: a JSON integer from 0 to MaxInt64 (the
// counters take an int); nothing else (a fraction, an exponent, a sign).
func tokenCount(v *fastjson.Value) (uint64, bool) {
	if v == nil || v.Type() != fastjson.TypeNumber {
		return 0, false
	}
	n, err := v.Uint64() // allocates its error, for a count that is not one
	return n, err == nil && n <= math.MaxInt64
}

// lastMember returns the value of v's last member named key, or nil when
// v is not an object or has none. The last, as Python's json and Go's
// encoding/json read duplicates; fastjson's Object.Get returns the first,
// so this visits every member. The visitor does not escape (Visit only
// calls it), so it costs no allocation (TestAllocsUsage).
func lastMember(v *fastjson.Value, key string) *fastjson.Value {
	if v == nil || v.Type() != fastjson.TypeObject {
		return nil
	}
	var last *fastjson.Value
	v.GetObject().Visit(func(k []byte, m *fastjson.Value) {
		if string(k) == key {
			last = m
		}
	})
	return last
}

// keepTail keeps the last maxUsageTail bytes of a JSON body.
func (u *usageTracker) keepTail(b []byte) {
	if len(b) >= maxUsageTail {
		u.tail = append(u.tail[:0], b[len(b)-maxUsageTail:]...)
		return
	}
	if over := len(u.tail) + len(b) - maxUsageTail; over > 0 {
		n := copy(u.tail, u.tail[over:])
		u.tail = u.tail[:n]
	}
	u.tail = append(u.tail, b...)
}

// eof ends the body: a JSON body's usage is read from its tail, an SSE
// stream's last line may lack its newline.
func (u *usageTracker) eof() {
	if u.mm == nil {
		return
	}
	if u.sse {
		if len(u.carry) > 0 && !u.skipLine {
			u.sseLine(u.carry, time.Now())
		}
		u.carry = u.carry[:0]
		return
	}
	t := u.tail
	for end := len(t); end > 0; {
		i := bytes.LastIndex(t[:end], strUsage)
		if i < 0 {
			return
		}
		end = i
		if i > 0 && t[i-1] == '\\' { // inside a string
			continue
		}
		j := jsonspan.SkipWS(t, i+len(strUsage))
		if j >= len(t) || t[j] != ':' {
			continue
		}
		j = jsonspan.SkipWS(t, j+1)
		if j >= len(t) || t[j] != '{' {
			continue
		}
		k, ok := jsonspan.SkipValue(t, j)
		if !ok {
			continue
		}
		if v, err := u.parser.ParseBytes(t[j:k]); err == nil {
			u.readUsage(v)
			if u.haveUsage {
				return
			}
		}
	}
}

// finish counts what the response reported, once, when the request ends.
func (u *usageTracker) finish() {
	if u.mm == nil {
		return
	}
	if u.haveUsage {
		u.mm.prompt.Add(int(u.prompt))
		u.mm.completion.Add(int(u.completion))
	} else {
		u.mm.noUsage.Inc()
	}
	u.mm = nil
}
