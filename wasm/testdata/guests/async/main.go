//go:build wasip1

// Command async is a test guest for the wasm package's asynchronous and
// shared host features. The plugin configuration is a comma-separated list
// of options:
//
//	tick=N     call proxy_set_tick_period_milliseconds(N) at start; each
//	           tick adds 1 to shared key "ticks", records the instance's
//	           token once in shared key "tickers" (space-separated), and
//	           resumes the requests paused with x-async-pause
//	queue=Q    register shared queue Q at start; proxy_on_queue_ready
//	           dequeues every item and appends "item@token" to shared key
//	           "dequeued" (space-separated)
//
// Request headers select what a request does:
//
//	x-async-counter: K       add 1 to shared key K with a get/CAS-set retry
//	                         loop; answer x-counter (new value),
//	                         x-counter-retries and x-token (the instance's
//	                         random token)
//	x-async-tick: N          set the tick period of this request's
//	                         instance to N ms; answer x-tick
//	x-async-shared-get: K    answer x-shared: the value of shared key K
//	x-async-shared-del: K    delete shared key K (sdk.DeleteSharedData);
//	                         answer x-deleted: ok or the error
//	x-async-shared-ttl: P    sdk.SetSharedDataPolicy(P, 1h, evict);
//	                         answer x-policy: ok or the error
//	x-async-pause: 1         pause; a tick resumes the request
//	x-async-callout: P1,P2   one HTTP call per pool (":path" from
//	                         x-async-callout-path, default /callout;
//	                         timeout ms from x-async-callout-timeout,
//	                         default 5000), all in flight at once; the
//	                         request pauses until every reply arrived.
//	                         Each result is answered as x-callout-<i>
//	x-async-callout-keep: 1  with x-async-callout: do not resume (the
//	                         request waits until the proxy gives up)
//	x-async-enqueue: DATA    resolve the queue named by x-async-queue (in
//	                         this plugin's vm_id) and enqueue DATA;
//	                         answer x-enqueue
//	x-async-metric: 1        increment the counter, move the gauge up (and
//	                         down at the end of the stream), record the
//	                         histogram; answer x-metric-counter
//	x-async-ffi: NAME        call foreign function NAME with the bytes of
//	                         x-async-ffi-arg; answer x-ffi: hex result
//
// At start it logs "async: define <name> type=<t> id=<id> err=<err>" for
// every metric it defines, including invalid names.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

func main() {}

func init() { sdk.SetPluginContext(func(id uint32) sdk.PluginContext { return &plugin{id: id} }) }

type plugin struct {
	sdk.DefaultPluginContext
	id      uint32
	token   string
	vmID    string
	queueID uint32
	ticked  bool
	paused  []uint32

	counter sdk.Counter
	gauge   sdk.Gauge
	hist    sdk.Histogram
}

var root *plugin

// Metric names: the counter in Envoy's tag-extraction form, the gauge in
// Envoy's stat-prefix form.
const (
	counterName = "custom_header_value_counts_value=foo_reporter=wasmgosdk"
	gaugeName   = "wasmcustom.async.inflight"
	histName    = "async_body_bytes"
)

func (p *plugin) OnPluginStart(int) bool {
	root = p
	var b [4]byte
	if res, err := sdk.CallForeignFunction("sluice.random_bytes", binary.LittleEndian.AppendUint32(nil, 4)); err == nil {
		copy(b[:], res)
	}
	p.token = hex.EncodeToString(b[:])
	vmID, _ := sdk.GetProperty([]string{"plugin_vm_id"})
	p.vmID = string(vmID)

	var err error
	p.counter, err = sdk.DefineCounterMetric(counterName)
	logDefine(counterName, 0, p.counter, err)
	p.gauge, err = sdk.DefineGaugeMetric(gaugeName)
	logDefine(gaugeName, 1, p.gauge, err)
	p.hist, err = sdk.DefineHistogramMetric(histName)
	logDefine(histName, 2, p.hist, err)
	again, err := sdk.DefineCounterMetric(counterName)
	logDefine("again", 0, again, err)
	for _, bad := range []string{"", "!!!", strings.Repeat("x", 300), "a_plugin=x", "a_b=1_b=2"} {
		_, err := sdk.DefineCounterMetric(bad)
		sdk.LogInfof("async: define %q type=0 err=%v", bad, err)
	}
	_, err = sdk.DefineGaugeMetric(counterName)
	sdk.LogInfof("async: define counter-as-gauge err=%v", err)

	cfg, _ := sdk.GetPluginConfiguration()
	for _, opt := range strings.Split(string(cfg), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(opt), "=")
		switch k {
		case "tick":
			n, _ := strconv.Atoi(v)
			if err := sdk.SetTickPeriodMilliSeconds(uint32(n)); err != nil {
				sdk.LogErrorf("async: tick: %v", err)
				return false
			}
		case "queue":
			id, err := sdk.RegisterSharedQueue(v)
			if err != nil {
				sdk.LogErrorf("async: register queue: %v", err)
				return false
			}
			p.queueID = id
		}
	}
	sdk.LogInfof("async: started token=%s", p.token)
	return true
}

func logDefine(name string, typ int, m any, err error) {
	sdk.LogInfof("async: define %s type=%d id=%v err=%v", name, typ, m, err)
}

func (p *plugin) OnTick() {
	must(casUpdate("ticks", func(old string) string {
		n, _ := strconv.Atoi(old)
		return strconv.Itoa(n + 1)
	}))
	if !p.ticked {
		p.ticked = true
		must(casUpdate("tickers", func(old string) string { return strings.TrimSpace(old + " " + p.token) }))
	}
	kept := p.paused[:0]
	for _, id := range p.paused {
		if err := sdk.SetEffectiveContext(id); err != nil {
			kept = append(kept, id) // not paused yet: next tick
			continue
		}
		must(sdk.ResumeHttpRequest())
	}
	p.paused = kept
}

func (p *plugin) OnQueueReady(queueID uint32) {
	for {
		item, err := sdk.DequeueSharedQueue(queueID)
		if errors.Is(err, sdk.ErrEmpty) {
			return
		}
		if err != nil {
			sdk.LogErrorf("async: dequeue: %v", err)
			return
		}
		must(casUpdate("dequeued", func(old string) string {
			return strings.TrimSpace(old + " " + string(item) + "@" + p.token)
		}))
	}
}

// casUpdate applies f to shared key with a get/CAS-set loop; it returns
// the number of CAS mismatches it retried through.
func casUpdateN(key string, f func(string) string) (string, int, error) {
	for retries := 0; ; retries++ {
		v, cas, err := sdk.GetSharedData(key)
		if err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return "", retries, err
		}
		nv := f(string(v))
		err = sdk.SetSharedData(key, []byte(nv), cas)
		if errors.Is(err, sdk.ErrCasMismatch) {
			continue
		}
		return nv, retries, err
	}
}

func casUpdate(key string, f func(string) string) error {
	_, _, err := casUpdateN(key, f)
	return err
}

func (p *plugin) NewHttpContext(id uint32) sdk.HttpContext { return &stream{p: p, id: id} }

type stream struct {
	sdk.DefaultHttpContext
	p       *plugin
	id      uint32
	answers [][2]string
	gauged  bool
	// callouts
	results []string
	pending int
	keep    bool
}

func header(name string) string {
	v, _ := sdk.GetHttpRequestHeader(name)
	return v
}

func (s *stream) answer(k, v string) { s.answers = append(s.answers, [2]string{k, v}) }

func (s *stream) OnHttpRequestHeaders(int, bool) sdk.Action {
	if k := header("x-async-counter"); k != "" {
		v, retries, err := casUpdateN(k, func(old string) string {
			n, _ := strconv.Atoi(old)
			return strconv.Itoa(n + 1)
		})
		if err != nil {
			v = err.Error()
		}
		s.answer("x-counter", v)
		s.answer("x-counter-retries", strconv.Itoa(retries))
		s.answer("x-token", s.p.token)
	}
	if v := header("x-async-tick"); v != "" {
		n, _ := strconv.Atoi(v)
		s.answer("x-tick", valueOr("ok", sdk.SetTickPeriodMilliSeconds(uint32(n))))
	}
	if k := header("x-async-shared-del"); k != "" {
		s.answer("x-deleted", valueOr("ok", sdk.DeleteSharedData(k, 0)))
	}
	if pfx := header("x-async-shared-ttl"); pfx != "" {
		s.answer("x-policy", valueOr("ok", sdk.SetSharedDataPolicy(pfx, time.Hour, true)))
	}
	if k := header("x-async-shared-get"); k != "" {
		v, _, err := sdk.GetSharedData(k)
		s.answer("x-shared", valueOr(string(v), err))
	}
	if d := header("x-async-enqueue"); d != "" {
		id, err := sdk.ResolveSharedQueue(s.p.vmID, header("x-async-queue"))
		if err == nil {
			err = sdk.EnqueueSharedQueue(id, []byte(d))
		}
		s.answer("x-enqueue", valueOr("ok", err))
	}
	if header("x-async-metric") != "" {
		must(s.p.counter.Increment(1))
		must(s.p.gauge.Increment(1))
		s.gauged = true
		must(s.p.hist.Record(uint64(len(header("x-async-metric-value")))))
		v, err := s.p.counter.Get()
		s.answer("x-metric-counter", valueOr(strconv.FormatUint(v, 10), err))
		g, err := s.p.gauge.Get()
		s.answer("x-metric-gauge", valueOr(strconv.FormatInt(g, 10), err))
	}
	if name := header("x-async-ffi"); name != "" {
		res, err := sdk.CallForeignFunction(name, []byte(header("x-async-ffi-arg")))
		s.answer("x-ffi", valueOr(hex.EncodeToString(res), err))
	}
	if pools := header("x-async-callout"); pools != "" {
		return s.callout(strings.Split(pools, ","))
	}
	if header("x-async-pause") != "" {
		s.p.paused = append(s.p.paused, s.id)
		return sdk.ActionPause
	}
	return sdk.ActionContinue
}

func (s *stream) callout(pools []string) sdk.Action {
	path := header("x-async-callout-path")
	if path == "" {
		path = "/callout"
	}
	timeout := uint32(5000)
	if v := header("x-async-callout-timeout"); v != "" {
		n, _ := strconv.Atoi(v)
		timeout = uint32(n)
	}
	s.keep = header("x-async-callout-keep") != ""
	s.results = make([]string, len(pools))
	for i, pool := range pools {
		hdrs := [][2]string{{":method", "POST"}, {":path", path}, {":authority", "callout.test"},
			{"x-callout-from", strconv.Itoa(int(s.id))}}
		_, err := sdk.DispatchHttpCall(pool, hdrs, []byte("call "+strconv.Itoa(i)), nil, timeout,
			func(numHeaders, bodySize, numTrailers int) { s.onReply(i, pool, numHeaders, bodySize, numTrailers) })
		if err != nil {
			s.results[i] = pool + " dispatch: " + err.Error()
			continue
		}
		s.pending++
	}
	if s.pending == 0 {
		return sdk.ActionContinue
	}
	return sdk.ActionPause
}

//go:wasmimport env proxy_get_status
func proxyGetStatus(code, data, size *uint32) uint32

// getStatus calls proxy_get_status directly: the SDK does not wrap it. The
// message buffer stays in the SDK's allocation table (a small leak that a
// test guest can afford).
func getStatus() (uint32, string, uint32) {
	var code, addr, size uint32
	st := proxyGetStatus(&code, &addr, &size)
	if st != 0 || size == 0 {
		return code, "", st
	}
	return code, string(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), size)), st
}

func (s *stream) onReply(i int, pool string, numHeaders, bodySize, numTrailers int) {
	code, msg, st := getStatus()
	r := pool + " n=" + strconv.Itoa(numHeaders) + " status=" + strconv.Itoa(int(code)) + " msg=" + msg +
		" st=" + strconv.Itoa(int(st)) + " trailers=" + strconv.Itoa(numTrailers)
	if numHeaders > 0 {
		hs, err := sdk.GetHttpCallResponseHeaders()
		if err != nil {
			r += " headers-err=" + err.Error()
		}
		for _, kv := range hs {
			if kv[0] == ":status" || kv[0] == "x-upstream-name" {
				r += " " + kv[0] + "=" + kv[1]
			}
		}
		body, err := sdk.GetHttpCallResponseBody(0, bodySize)
		r += " body=" + valueOr(string(body), err)
		if numTrailers > 0 {
			ts, _ := sdk.GetHttpCallResponseTrailers()
			for _, kv := range ts {
				r += " trailer:" + kv[0] + "=" + kv[1]
			}
		}
	}
	s.results[i] = r
	s.pending--
	if s.pending > 0 || s.keep {
		return
	}
	if err := sdk.SetEffectiveContext(s.id); err != nil {
		sdk.LogInfof("async: request %d gone before its replies: %v", s.id, err)
		return
	}
	must(sdk.ResumeHttpRequest())
}

func (s *stream) OnHttpResponseHeaders(int, bool) sdk.Action {
	for _, kv := range s.answers {
		must(sdk.AddHttpResponseHeader(kv[0], kv[1]))
	}
	for i, r := range s.results {
		must(sdk.AddHttpResponseHeader("x-callout-"+strconv.Itoa(i), r))
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpStreamDone() {
	if s.gauged {
		must(s.p.gauge.Increment(-1))
	}
}

func valueOr(v string, err error) string {
	if err != nil {
		return err.Error()
	}
	return v
}

func must(err error) {
	if err != nil {
		sdk.LogErrorf("async: %v", err)
	}
}
