package sdk

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// recorder collects the callbacks the dispatcher delivers.
type recorder struct{ events []string }

func (r *recorder) add(format string, args ...any) {
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

type testVM struct {
	rec       *recorder
	nilPlugin bool
}

func (v *testVM) OnVMStart(size int) bool { v.rec.add("vm start %d", size); return size != 99 }
func (v *testVM) NewPluginContext(id uint32) PluginContext {
	v.rec.add("new plugin %d", id)
	if v.nilPlugin {
		return nil
	}
	return &testPlugin{rec: v.rec, id: id}
}

type testPlugin struct {
	rec *recorder
	id  uint32
}

func (p *testPlugin) OnPluginStart(size int) bool {
	p.rec.add("plugin %d start %d", p.id, size)
	return true
}
func (p *testPlugin) NewHttpContext(id uint32) HttpContext {
	p.rec.add("plugin %d new http %d", p.id, id)
	if id == 404 {
		return nil
	}
	return &testHTTP{rec: p.rec, id: id}
}
func (p *testPlugin) OnTick()               { p.rec.add("plugin %d tick", p.id) }
func (p *testPlugin) OnQueueReady(q uint32) { p.rec.add("plugin %d queue %d", p.id, q) }
func (p *testPlugin) OnPluginDone() bool    { p.rec.add("plugin %d done", p.id); return false }
func (p *testPlugin) OnForeignFunction(fn uint32, n int) {
	p.rec.add("plugin %d ffi %d %d", p.id, fn, n)
}
func (p *testPlugin) OnHttpCallResponse(id uint32, h, b, tr int) {
	p.rec.add("plugin %d callout %d %d %d %d", p.id, id, h, b, tr)
}

type testHTTP struct {
	rec *recorder
	id  uint32
}

func (h *testHTTP) OnHttpRequestHeaders(n int, eos bool) Action {
	h.rec.add("http %d req headers %d %v", h.id, n, eos)
	return ActionPause
}
func (h *testHTTP) OnHttpRequestBody(n int, eos bool) Action {
	h.rec.add("http %d req body %d %v", h.id, n, eos)
	return Action(3) // Envoy-style pause variants pass through untouched
}
func (h *testHTTP) OnHttpResponseHeaders(n int, eos bool) Action {
	h.rec.add("http %d resp headers %d %v", h.id, n, eos)
	return ActionContinue
}
func (h *testHTTP) OnHttpResponseBody(n int, eos bool) Action {
	h.rec.add("http %d resp body %d %v", h.id, n, eos)
	return ActionContinue
}
func (h *testHTTP) OnHttpStreamDone() { h.rec.add("http %d done", h.id) }
func (h *testHTTP) OnHttpRequestTrailers(n int) Action {
	h.rec.add("http %d req trailers %d", h.id, n)
	return ActionPause
}

func newTestDispatcher() (*dispatcher, *recorder, *[]string) {
	rec := &recorder{}
	var logs []string
	d := newDispatcher()
	d.vm = &testVM{rec: rec}
	d.log = func(l LogLevel, msg string) { logs = append(logs, l.String()+" "+msg) }
	return d, rec, &logs
}

func TestDispatchLifecycle(t *testing.T) {
	d, rec, logs := newTestDispatcher()
	d.onContextCreate(1, 0)
	if !d.onVMStart(1, 7) || !d.onConfigure(1, 12) {
		t.Fatal("start or configure failed")
	}
	d.onContextCreate(2, 1)
	actions := []Action{
		d.onRequestHeaders(2, 4, false),
		d.onRequestBody(2, 10, true),
		d.onRequestTrailers(2, 1),
		d.onResponseHeaders(2, 3, false),
		d.onResponseBody(2, 20, true),
		d.onResponseTrailers(2, 2), // no ResponseTrailersHandler: continue
	}
	if want := []Action{ActionPause, Action(3), ActionPause, ActionContinue, ActionContinue, ActionContinue}; !reflect.DeepEqual(actions, want) {
		t.Errorf("actions %v, want %v", actions, want)
	}
	d.onLog(2)
	if !d.onDone(2) {
		t.Error("onDone for an HTTP context = false, want true")
	}
	d.onDelete(2)
	d.onTick(1)
	d.onQueueReady(1, 5)
	d.onForeignFunction(1, 9, 33)
	if d.onDone(1) {
		t.Error("onDone for the plugin = true, want the plugin's false")
	}
	d.onDelete(1)
	want := []string{
		"new plugin 1", "vm start 7", "plugin 1 start 12", "plugin 1 new http 2",
		"http 2 req headers 4 false", "http 2 req body 10 true", "http 2 req trailers 1",
		"http 2 resp headers 3 false", "http 2 resp body 20 true",
		"http 2 done", "plugin 1 tick", "plugin 1 queue 5", "plugin 1 ffi 9 33", "plugin 1 done",
	}
	if !reflect.DeepEqual(rec.events, want) {
		t.Errorf("events\n got %q\nwant %q", rec.events, want)
	}
	if len(*logs) != 0 {
		t.Errorf("unexpected SDK logs %q", *logs)
	}
	if len(d.plugins) != 0 || d.streams.len() != 0 {
		t.Errorf("contexts left after delete: %d plugins, %d streams", len(d.plugins), d.streams.len())
	}
}

func TestDispatchStreamDoneOnce(t *testing.T) {
	d, rec, _ := newTestDispatcher()
	d.onContextCreate(1, 0)
	d.onContextCreate(2, 1)
	d.onContextCreate(3, 1)
	d.onLog(2)
	d.onLog(2)
	d.onDelete(2)
	d.onDelete(3) // no proxy_on_log: done still delivered, once
	d.onDelete(3)
	var done []string
	for _, e := range rec.events {
		if strings.HasSuffix(e, " done") {
			done = append(done, e)
		}
	}
	if want := []string{"http 2 done", "http 3 done"}; !reflect.DeepEqual(done, want) {
		t.Errorf("done events %q, want %q", done, want)
	}
}

func TestDispatchUnknownContexts(t *testing.T) {
	d, rec, logs := newTestDispatcher()
	d.onContextCreate(5, 77) // parent does not exist
	if d.onConfigure(9, 0) {
		t.Error("configure of an unknown plugin context succeeded")
	}
	if a := d.onRequestHeaders(5, 1, true); a != ActionContinue {
		t.Errorf("request headers on an unknown context = %v, want continue", a)
	}
	d.onTick(9)
	d.onQueueReady(9, 1)
	d.onForeignFunction(9, 1, 0)
	d.onHttpCallResponse(9, 1, 0, 0, 0)
	if !d.onDone(42) {
		t.Error("onDone for an unknown context = false, want true")
	}
	d.onDelete(42)
	d.onLog(42)
	if len(rec.events) != 0 {
		t.Errorf("events for unknown contexts: %q", rec.events)
	}
	for _, want := range []string{
		"error sdk: HTTP context 5 created under unknown plugin context 77",
		"error sdk: configure for unknown plugin context 9",
		"error sdk: tick for unknown plugin context 9",
		"error sdk: queue 1 ready for unknown plugin context 9",
		"warn sdk: foreign function 1 called on plugin context 9, which has no ForeignFunctionHandler",
		"warn sdk: response to HTTP call 1 for plugin context 9 has no callback and no HttpCallResponseHandler",
	} {
		found := false
		for _, l := range *logs {
			found = found || l == want
		}
		if !found {
			t.Errorf("missing log %q in %q", want, *logs)
		}
	}

	// A plugin that ignores HTTP traffic: NewHttpContext returns nil.
	d.onContextCreate(1, 0)
	d.onContextCreate(404, 1)
	if a := d.onRequestHeaders(404, 1, true); a != ActionContinue {
		t.Errorf("request headers with a nil HttpContext = %v, want continue", a)
	}
}

func TestDispatchNoVMContext(t *testing.T) {
	d := newDispatcher()
	var logs []string
	d.log = func(l LogLevel, msg string) { logs = append(logs, l.String()+" "+msg) }
	d.onContextCreate(1, 0)
	if d.onVMStart(1, 0) {
		t.Error("VM start without a VMContext succeeded")
	}
	if len(logs) != 2 || !strings.Contains(logs[0], "call sdk.SetVMContext from init()") {
		t.Errorf("logs %q, want critical lines telling to call SetVMContext", logs)
	}

	d2, _, logs2 := newTestDispatcher()
	d2.vm.(*testVM).nilPlugin = true
	d2.onContextCreate(1, 0)
	if d2.onConfigure(1, 0) {
		t.Error("configure succeeded although NewPluginContext returned nil")
	}
	if len(*logs2) == 0 || !strings.Contains((*logs2)[0], "NewPluginContext(1) returned nil") {
		t.Errorf("logs %q", *logs2)
	}
}

func TestDispatchVMStartResult(t *testing.T) {
	d, _, _ := newTestDispatcher()
	if d.onVMStart(1, 99) {
		t.Error("onVMStart ignored the VMContext's false")
	}
}

func TestDispatchCallouts(t *testing.T) {
	d, rec, logs := newTestDispatcher()
	d.onContextCreate(1, 0)
	var got []string
	d.registerCallout(7, func(h, b, tr int) { got = append(got, fmt.Sprintf("cb %d %d %d", h, b, tr)) })
	d.onHttpCallResponse(1, 7, 3, 100, 0)
	d.onHttpCallResponse(1, 7, 3, 100, 0) // second response: callback already consumed
	if want := []string{"cb 3 100 0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("callback calls %q, want %q", got, want)
	}
	if want := "plugin 1 callout 7 3 100 0"; len(rec.events) == 0 || rec.events[len(rec.events)-1] != want {
		t.Errorf("fallback events %q, want the HttpCallResponseHandler to get %q", rec.events, want)
	}
	if len(*logs) != 0 {
		t.Errorf("logs %q", *logs)
	}
}

func TestSetVMContext(t *testing.T) {
	old := dispatch.vm
	defer func() { dispatch.vm = old }()
	vm := &testVM{rec: &recorder{}}
	SetVMContext(vm)
	if dispatch.vm != vm {
		t.Error("SetVMContext did not register the context")
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "nil VMContext") {
			t.Errorf("SetVMContext(nil) recovered %v, want a panic naming the nil VMContext", r)
		}
	}()
	SetVMContext(nil)
}

func TestDefaults(t *testing.T) {
	var vm DefaultVMContext
	if !vm.OnVMStart(0) {
		t.Error("DefaultVMContext.OnVMStart = false")
	}
	pc := vm.NewPluginContext(1)
	if !pc.OnPluginStart(0) || !pc.OnPluginDone() || pc.NewHttpContext(2) != nil {
		t.Error("DefaultPluginContext: want start true, done true, no HTTP context")
	}
	var hc DefaultHttpContext
	for _, a := range []Action{hc.OnHttpRequestHeaders(1, true), hc.OnHttpRequestBody(1, true),
		hc.OnHttpResponseHeaders(1, true), hc.OnHttpResponseBody(1, true)} {
		if a != ActionContinue {
			t.Errorf("DefaultHttpContext returned %v, want continue", a)
		}
	}
}

// TestDispatchReusesStreamRecords checks that a deleted stream's record
// is reused without carrying its state over: a stream created after
// another was logged and deleted still gets its own OnHttpStreamDone, and
// a stale callback for the deleted ID reaches nobody.
func TestDispatchReusesStreamRecords(t *testing.T) {
	d, rec, _ := newTestDispatcher()
	d.onContextCreate(1, 0)
	d.onContextCreate(2, 1)
	old := d.streams.get(2)
	d.onLog(2) // done delivered, record marked done
	d.onDelete(2)
	d.onContextCreate(3, 1)
	if d.streams.get(3) != old {
		t.Fatalf("stream 3 got a new record; want the deleted stream 2's reused")
	}
	d.onRequestHeaders(2, 1, true) // stale: stream 2 is gone
	d.onRequestHeaders(3, 1, true)
	d.onDelete(3) // no proxy_on_log: done must still come (the reused record is not "done")
	want := []string{"http 2 done", "http 3 req headers 1 true", "http 3 done"}
	var got []string
	for _, e := range rec.events {
		if strings.HasPrefix(e, "http ") {
			got = append(got, e)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	// The spare list is bounded.
	for id := uint32(10); id < 10+2*maxSpareStreams; id++ {
		d.onContextCreate(id, 1)
	}
	for id := uint32(10); id < 10+2*maxSpareStreams; id++ {
		d.onDelete(id)
	}
	if n := len(d.spare); n != maxSpareStreams {
		t.Errorf("%d spare records, want the bound %d", n, maxSpareStreams)
	}
}

// TestDispatchForgetsDeletedPlugin: after a plugin context is deleted,
// the lookup cache does not hand it to a new stream, and a plugin context
// created again under the same ID is the new one.
func TestDispatchForgetsDeletedPlugin(t *testing.T) {
	d, _, logs := newTestDispatcher()
	d.onContextCreate(1, 0)
	d.onContextCreate(2, 1) // caches plugin 1
	d.onDelete(1)
	d.onContextCreate(3, 1)
	if d.streams.get(3) != nil || len(*logs) != 1 || !strings.Contains((*logs)[0], "unknown plugin context 1") {
		t.Fatalf("stream under a deleted plugin context: %v, logs %q", d.streams.get(3), *logs)
	}
	d.onContextCreate(1, 0)
	first, _ := d.plugin(1)
	d.onContextCreate(1, 0) // created again without a delete
	if again, _ := d.plugin(1); again == first {
		t.Fatal("plugin() returned the replaced plugin context")
	}
}
