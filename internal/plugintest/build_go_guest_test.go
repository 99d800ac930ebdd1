package plugintest

// A minimal Proxy-Wasm host, just enough to run the Go guests built by
// BuildGo end to end and check the SDK's side of the ABI (memory allocation
// for returned values, map serialisation, context dispatch, local replies).
// It is deliberately independent of the sdk package's own serialiser and of
// the real host in wasm/.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

const (
	stOK            = 0
	stNotFound      = 1
	stBadArgument   = 2
	stInvalidMemory = 6
	stEmpty         = 7
	stInternal      = 10
	stUnimplemented = 12
)

type localReply struct {
	status  uint32
	headers [][2]string
	body    []byte
}

// miniHost is one guest instance plus the host state its calls see.
type miniHost struct {
	t       *testing.T
	ctx     context.Context
	mod     api.Module
	stderr  bytes.Buffer
	buffers map[uint32][]byte      // by proxy_buffer_type_t
	maps    map[uint32][][2]string // by proxy_map_type_t
	props   map[string][]byte      // by NUL-joined path
	shared  map[string][]byte
	queue   [][]byte
	logs    []string // "<level> <message>"
	reply   *localReply
	streams []string // "continue 0", "close 1"
}

// goGuestRuntime compiles each guest once per test binary.
var goGuestRuntime struct {
	sync.Mutex
	r        wazero.Runtime
	compiled map[string]wazero.CompiledModule
}

func newMiniHost(t *testing.T, pkg string, pluginConfig string) *miniHost {
	t.Helper()
	h := &miniHost{
		t: t, ctx: context.Background(),
		buffers: map[uint32][]byte{7: []byte(pluginConfig)},
		maps:    map[uint32][][2]string{},
		props:   map[string][]byte{"plugin_name": []byte("test")},
		shared:  map[string][]byte{},
	}
	bin, err := os.ReadFile(BuildGo(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	g := &goGuestRuntime
	g.Lock()
	defer g.Unlock()
	if g.r == nil {
		g.r = wazero.NewRuntimeWithConfig(h.ctx, wazero.NewRuntimeConfigInterpreter())
		wasi_snapshot_preview1.MustInstantiate(h.ctx, g.r)
		env := g.r.NewHostModuleBuilder("env")
		for name, params := range abiHostFuncs {
			env.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
				stack[0] = uint64(hostFor(ctx).dispatch(name, m, stack))
			}), params, i32s(1)).Export(name)
		}
		if _, err := env.Instantiate(h.ctx); err != nil {
			t.Fatal(err)
		}
		g.compiled = map[string]wazero.CompiledModule{}
	}
	cm, ok := g.compiled[pkg]
	if !ok {
		if cm, err = g.r.CompileModule(h.ctx, bin); err != nil {
			t.Fatal(err)
		}
		g.compiled[pkg] = cm
	}
	h.ctx = context.WithValue(h.ctx, miniHostKey{}, h)
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").WithStderr(&h.stderr).WithStdout(&h.stderr)
	if h.mod, err = g.r.InstantiateModule(h.ctx, cm, cfg); err != nil {
		t.Fatalf("instantiating %s: %v\n%s", pkg, err, h.stderr.String())
	}
	t.Cleanup(func() { h.mod.Close(context.Background()) })
	return h
}

type miniHostKey struct{}

func hostFor(ctx context.Context) *miniHost { return ctx.Value(miniHostKey{}).(*miniHost) }

// call invokes a guest export and returns its first result (0 if none).
func (h *miniHost) call(name string, args ...uint64) uint64 {
	h.t.Helper()
	res, err := h.mod.ExportedFunction(name).Call(h.ctx, args...)
	if err != nil {
		h.t.Fatalf("%s%v: %v\nguest stderr: %s\nlogs: %q", name, args, err, h.stderr.String(), h.logs)
	}
	if len(res) == 0 {
		return 0
	}
	return res[0]
}

// start creates plugin context 1 and configures it; it returns
// proxy_on_configure's result.
func (h *miniHost) start() uint64 {
	h.call("proxy_on_context_create", 1, 0)
	if got := h.call("proxy_on_vm_start", 1, 0); got != 1 {
		h.t.Fatalf("proxy_on_vm_start = %d, want 1", got)
	}
	return h.call("proxy_on_configure", 1, uint64(len(h.buffers[7])))
}

func (h *miniHost) read(m api.Module, ptr, size uint64) ([]byte, bool) {
	b, ok := m.Memory().Read(uint32(ptr), uint32(size))
	return bytes.Clone(b), ok
}

// ret hands data back through proxy_on_memory_allocate and the guest's
// return pointers.
func (h *miniHost) ret(m api.Module, data []byte, ptrAddr, sizeAddr uint64) uint32 {
	var addr uint32
	if len(data) > 0 {
		res, err := m.ExportedFunction("proxy_on_memory_allocate").Call(h.ctx, uint64(len(data)))
		if err != nil || res[0] == 0 {
			return stInternal
		}
		addr = uint32(res[0])
		if !m.Memory().Write(addr, data) {
			return stInvalidMemory
		}
	}
	if !m.Memory().WriteUint32Le(uint32(ptrAddr), addr) || !m.Memory().WriteUint32Le(uint32(sizeAddr), uint32(len(data))) {
		return stInvalidMemory
	}
	return stOK
}

func (h *miniHost) dispatch(name string, m api.Module, s []uint64) uint32 {
	mem := m.Memory()
	str := func(ptr, size uint64) string { b, _ := h.read(m, ptr, size); return string(b) }
	switch name {
	case "proxy_log":
		h.logs = append(h.logs, fmt.Sprintf("%d %s", uint32(s[0]), str(s[1], s[2])))
	case "proxy_get_log_level":
		mem.WriteUint32Le(uint32(s[0]), 2)
	case "proxy_get_current_time_nanoseconds":
		mem.WriteUint64Le(uint32(s[0]), 1_700_000_000_000_000_000)
	case "proxy_get_buffer_bytes":
		buf, ok := h.buffers[uint32(s[0])]
		if !ok {
			return stNotFound
		}
		start, end := min(uint64(len(buf)), s[1]&0xFFFFFFFF), uint64(len(buf))
		end = min(end, start+(s[2]&0xFFFFFFFF))
		return h.ret(m, buf[start:end], s[3], s[4])
	case "proxy_set_buffer_bytes":
		data, _ := h.read(m, s[3], s[4])
		h.buffers[uint32(s[0])] = data
	case "proxy_get_header_map_pairs":
		return h.ret(m, serializePairs(h.maps[uint32(s[0])]), s[1], s[2])
	case "proxy_set_header_map_pairs":
		b, _ := h.read(m, s[1], s[2])
		pairs, err := parsePairs(b)
		if err != nil {
			h.t.Errorf("guest sent a malformed map: %v", err)
			return stBadArgument
		}
		h.maps[uint32(s[0])] = pairs
	case "proxy_get_header_map_value":
		key := str(s[1], s[2])
		for _, kv := range h.maps[uint32(s[0])] {
			if strings.EqualFold(kv[0], key) {
				return h.ret(m, []byte(kv[1]), s[3], s[4])
			}
		}
		return stNotFound
	case "proxy_add_header_map_value":
		h.maps[uint32(s[0])] = append(h.maps[uint32(s[0])], [2]string{str(s[1], s[2]), str(s[3], s[4])})
	case "proxy_replace_header_map_value":
		h.removeHeader(uint32(s[0]), str(s[1], s[2]))
		h.maps[uint32(s[0])] = append(h.maps[uint32(s[0])], [2]string{str(s[1], s[2]), str(s[3], s[4])})
	case "proxy_remove_header_map_value":
		h.removeHeader(uint32(s[0]), str(s[1], s[2]))
	case "proxy_continue_stream", "proxy_close_stream":
		h.streams = append(h.streams, fmt.Sprintf("%s %d", strings.TrimSuffix(strings.TrimPrefix(name, "proxy_"), "_stream"), uint32(s[0])))
	case "proxy_send_local_response":
		body, _ := h.read(m, s[3], s[4])
		hb, _ := h.read(m, s[5], s[6])
		headers, err := parsePairs(hb)
		if err != nil {
			h.t.Errorf("guest sent malformed local-reply headers: %v", err)
			return stBadArgument
		}
		h.reply = &localReply{status: uint32(s[0]), headers: headers, body: body}
	case "proxy_get_property":
		path := str(s[0], s[1])
		if path == "abicheck\x00bogus_pointer" { // an address the guest never allocated
			mem.WriteUint32Le(uint32(s[2]), 16)
			mem.WriteUint32Le(uint32(s[3]), 4)
			return stOK
		}
		v, ok := h.props[path]
		if !ok {
			return stNotFound
		}
		return h.ret(m, v, s[2], s[3])
	case "proxy_set_property":
		v, _ := h.read(m, s[2], s[3])
		h.props[str(s[0], s[1])] = v
	case "proxy_set_shared_data":
		v, _ := h.read(m, s[2], s[3])
		h.shared[str(s[0], s[1])] = v
	case "proxy_get_shared_data":
		v, ok := h.shared[str(s[0], s[1])]
		if !ok {
			return stNotFound
		}
		mem.WriteUint32Le(uint32(s[4]), 7)
		return h.ret(m, v, s[2], s[3])
	case "proxy_register_shared_queue":
		mem.WriteUint32Le(uint32(s[2]), 1)
	case "proxy_enqueue_shared_queue":
		v, _ := h.read(m, s[1], s[2])
		h.queue = append(h.queue, v)
	case "proxy_dequeue_shared_queue":
		if len(h.queue) == 0 {
			return stEmpty
		}
		v := h.queue[0]
		h.queue = h.queue[1:]
		return h.ret(m, v, s[1], s[2])
	case "proxy_call_foreign_function":
		args, _ := h.read(m, s[2], s[3])
		return h.ret(m, bytes.ToUpper(args), s[4], s[5])
	default:
		return stUnimplemented
	}
	return stOK
}

func (h *miniHost) removeHeader(mt uint32, name string) {
	kept := h.maps[mt][:0]
	for _, kv := range h.maps[mt] {
		if !strings.EqualFold(kv[0], name) {
			kept = append(kept, kv)
		}
	}
	h.maps[mt] = kept
}

// serializePairs and parsePairs implement the spec's map format
// independently of the sdk package.
func serializePairs(pairs [][2]string) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pairs)))
	for _, kv := range pairs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[0])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[1])))
	}
	for _, kv := range pairs {
		b = append(append(append(append(b, kv[0]...), 0), kv[1]...), 0)
	}
	return b
}

func parsePairs(b []byte) ([][2]string, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("map of %d bytes", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b))
	if 4+8*n > len(b) {
		return nil, fmt.Errorf("map of %d pairs in %d bytes", n, len(b))
	}
	pairs := make([][2]string, n)
	off := 4 + 8*n
	for i := range pairs {
		for j := 0; j < 2; j++ {
			l := int(binary.LittleEndian.Uint32(b[4+8*i+4*j:]))
			if off+l+1 > len(b) || b[off+l] != 0 {
				return nil, fmt.Errorf("pair %d field %d malformed", i, j)
			}
			pairs[i][j] = string(b[off : off+l])
			off += l + 1
		}
	}
	if off != len(b) {
		return nil, fmt.Errorf("%d trailing bytes", len(b)-off)
	}
	return pairs, nil
}

func (h *miniHost) logged(substr string) bool {
	for _, l := range h.logs {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func TestGoGuestHeaders(t *testing.T) {
	const cfg = `{"request": {"add": {"X-Added": "a"}, "set": {"x-set": "s", ":path": "/rewritten"}, "remove": ["x-remove"]},
	              "response": {"set": {"server": "sluice"}, "remove": ["x-internal"]}}`
	h := newMiniHost(t, "plugins/headers", cfg)
	if got := h.start(); got != 1 {
		t.Fatalf("proxy_on_configure = %d, want 1; logs %q", got, h.logs)
	}
	h.maps[0] = [][2]string{{":method", "GET"}, {":path", "/orig"}, {"x-set", "old"}, {"x-set", "older"},
		{"x-remove", "bye"}, {"x-added", "pre"}}
	h.maps[2] = [][2]string{{":status", "200"}, {"x-internal", "secret"}, {"server", "upstream"}}
	h.call("proxy_on_context_create", 2, 1)
	if got := h.call("proxy_on_request_headers", 2, uint64(len(h.maps[0])), 1); got != 0 {
		t.Errorf("proxy_on_request_headers = %d, want 0 (continue)", got)
	}
	wantReq := [][2]string{{":method", "GET"}, {"x-added", "pre"}, {":path", "/rewritten"}, {"x-set", "s"}, {"x-added", "a"}}
	if !reflect.DeepEqual(h.maps[0], wantReq) {
		t.Errorf("request headers\n got %q\nwant %q", h.maps[0], wantReq)
	}
	if got := h.call("proxy_on_response_headers", 2, uint64(len(h.maps[2])), 0); got != 0 {
		t.Errorf("proxy_on_response_headers = %d, want 0", got)
	}
	wantResp := [][2]string{{":status", "200"}, {"server", "sluice"}}
	if !reflect.DeepEqual(h.maps[2], wantResp) {
		t.Errorf("response headers\n got %q\nwant %q", h.maps[2], wantResp)
	}
	h.call("proxy_on_log", 2)
	if got := h.call("proxy_on_done", 2); got != 1 {
		t.Errorf("proxy_on_done = %d, want 1", got)
	}
	h.call("proxy_on_delete", 2)
	// Callbacks for a deleted or unknown context continue without touching anything.
	before := len(h.maps[0])
	if got := h.call("proxy_on_request_headers", 2, 0, 1); got != 0 || len(h.maps[0]) != before {
		t.Errorf("callback on a deleted context = %d and changed headers", got)
	}
}

func TestGoGuestHeadersBadConfig(t *testing.T) {
	for _, c := range []struct{ cfg, want string }{
		{`{"request": {"add": {"x a": "1"}}}`, `request.add: header name "x a" is not a valid token`},
		{`{"request": `, "invalid JSON configuration"},
		{`{"requests": {}}`, `unknown field "requests"`},
		{`{"response": {"remove": [":status"]}}`, `pseudo-header ":status" cannot be used here`},
	} {
		h := newMiniHost(t, "plugins/headers", c.cfg)
		if got := h.start(); got != 0 {
			t.Errorf("config %s: proxy_on_configure = %d, want 0", c.cfg, got)
		}
		if !h.logged("5 headers: ") || !h.logged(c.want) {
			t.Errorf("config %s: logs %q, want a critical line containing %q", c.cfg, h.logs, c.want)
		}
	}
}

func TestGoGuestDeny(t *testing.T) {
	const cfg = `{"rules": [
		{"path_prefix": "/admin", "message": "admin is off"},
		{"header": {"name": "X-Blocked", "value": "1"}, "status": 400, "message": "blocked"}]}`
	for i, c := range []struct {
		headers  [][2]string
		status   uint32 // 0: not denied
		typ, msg string
	}{
		{[][2]string{{":path", "/admin/users"}}, 403, "permission_error", "admin is off"},
		{[][2]string{{":path", "/%61dmin?x=1"}}, 403, "permission_error", "admin is off"},
		{[][2]string{{":path", "/v1/../admin"}}, 403, "permission_error", "admin is off"},
		{[][2]string{{":path", "/ok"}, {"x-blocked", "1"}}, 400, "invalid_request_error", "blocked"},
		{[][2]string{{":path", "/ok"}, {"x-blocked", "0"}}, 0, "", ""},
		{[][2]string{{":path", "/ok"}}, 0, "", ""},
	} {
		h := newMiniHost(t, "plugins/deny", cfg)
		if got := h.start(); got != 1 {
			t.Fatalf("proxy_on_configure = %d, want 1; logs %q", got, h.logs)
		}
		h.maps[0] = c.headers
		id := uint64(10 + i)
		h.call("proxy_on_context_create", id, 1)
		action := h.call("proxy_on_request_headers", id, uint64(len(c.headers)), 1)
		if c.status == 0 {
			if action != 0 || h.reply != nil {
				t.Errorf("%q: action %d reply %+v, want continue and no reply", c.headers, action, h.reply)
			}
			continue
		}
		if action != 1 || h.reply == nil {
			t.Fatalf("%q: action %d reply %+v, want pause and a local reply", c.headers, action, h.reply)
		}
		if h.reply.status != c.status {
			t.Errorf("%q: status %d, want %d", c.headers, h.reply.status, c.status)
		}
		if want := [][2]string{{"content-type", "application/json"}}; !reflect.DeepEqual(h.reply.headers, want) {
			t.Errorf("%q: reply headers %q, want %q", c.headers, h.reply.headers, want)
		}
		var body OpenAIError
		if err := json.Unmarshal(h.reply.body, &body); err != nil {
			t.Fatalf("%q: reply body %q: %v", c.headers, h.reply.body, err)
		}
		if e := body.Error; e.Message != c.msg || e.Type != c.typ || e.Param != nil || e.Code != "denied" {
			t.Errorf("%q: reply body %s, want message %q type %q param null code denied", c.headers, h.reply.body, c.msg, c.typ)
		}
	}
}

func TestGoGuestDenyBadConfig(t *testing.T) {
	for _, c := range []struct{ cfg, want string }{
		{``, "the configuration is empty"},
		{`{"rules": []}`, "at least one rule is required"},
		{`{"rules": [{"status": 403}]}`, "rules[0].path_prefix/header: a rule needs"},
		{`{"rules": [{"path_prefix": "/a"}, {"path_prefix": "/b", "status": 200}]}`, "rules[1].status: 200 is not in 400..599"},
		{`{"rules": [{"path_prefix": "admin"}]}`, `rules[0].path_prefix: "admin" does not start with /`},
	} {
		h := newMiniHost(t, "plugins/deny", c.cfg)
		if got := h.start(); got != 0 {
			t.Errorf("config %q: proxy_on_configure = %d, want 0", c.cfg, got)
		}
		if !h.logged(c.want) {
			t.Errorf("config %q: logs %q, want a line containing %q", c.cfg, h.logs, c.want)
		}
	}
}

// TestGoGuestSDKCalls runs every SDK wrapper against the mini host and checks
// each result: implemented calls succeed (values returned through
// proxy_on_memory_allocate included), the others report UNIMPLEMENTED, and a
// returned address the guest never allocated is refused.
func TestGoGuestSDKCalls(t *testing.T) {
	h := newMiniHost(t, "plugins/sdk/internal/abicheck", "exercise")
	h.buffers[6] = []byte("vm-config")
	h.buffers[0] = []byte("body")
	h.maps[0] = [][2]string{{"a", "1"}}
	if got := h.start(); got != 1 {
		t.Fatalf("proxy_on_configure = %d, want 1; logs %q", got, h.logs)
	}
	results := map[string]string{}
	for _, l := range h.logs {
		if rest, ok := strings.CutPrefix(l, "2 abicheck: "); ok {
			call, res, _ := strings.Cut(rest, ": ")
			results[call] = res
		}
	}
	unimplemented := map[string]bool{
		"SetTickPeriodMilliSeconds": true, "DispatchHttpCall": true, "SetEffectiveContext": true, "Done": true,
		"ResolveSharedQueue": true, "DefineCounterMetric": true, "Counter.Increment": true, "Counter.Get": true,
		"DefineGaugeMetric": true, "Gauge.Record": true, "DefineHistogramMetric": true, "Histogram.Record": true,
	}
	for _, call := range []string{
		"GetPluginConfiguration", "GetVMConfiguration", "Log", "GetLogLevel", "GetCurrentTime",
		"SetTickPeriodMilliSeconds", "GetBufferBytes", "SetBufferBytes", "GetHttpRequestHeaders",
		"ReplaceHttpRequestHeaders", "GetHttpRequestHeader", "AddHttpRequestHeader", "SetHttpRequestHeader",
		"RemoveHttpRequestHeader", "ResumeHttpRequest", "CloseStream", "SendHttpResponse", "DispatchHttpCall",
		"GetProperty", "SetProperty", "SetEffectiveContext", "Done", "SetSharedData", "GetSharedData",
		"RegisterSharedQueue", "ResolveSharedQueue", "EnqueueSharedQueue", "DequeueSharedQueue",
		"DefineCounterMetric", "Counter.Increment", "Counter.Get", "DefineGaugeMetric", "Gauge.Record",
		"DefineHistogramMetric", "Histogram.Record", "CallForeignFunction",
	} {
		got, ok := results[call]
		switch {
		case !ok:
			t.Errorf("%s: not reported; logs %q", call, h.logs)
		case unimplemented[call] && !(strings.HasPrefix(got, "sdk: proxy_") && strings.HasSuffix(got, ": UNIMPLEMENTED")):
			t.Errorf("%s: %q, want an UNIMPLEMENTED host error", call, got)
		case !unimplemented[call] && got != "ok":
			t.Errorf("%s: %q, want ok", call, got)
		}
	}
	if got := results["GetProperty(bogus_pointer)"]; !strings.Contains(got, "did not hand out") {
		t.Errorf("GetProperty(bogus_pointer): %q, want the SDK to refuse an address it did not allocate", got)
	}
	// Side effects the host saw.
	if len(h.maps[0]) != 0 { // replace, add, set, then remove "a"
		t.Errorf("request headers after the header calls: %q, want none", h.maps[0])
	}
	if want := []string{"continue 0", "close 1"}; !reflect.DeepEqual(h.streams, want) {
		t.Errorf("stream calls %q, want %q", h.streams, want)
	}
	if h.reply == nil || h.reply.status != 403 || string(h.reply.body) != "no" || len(h.reply.headers) != 0 {
		t.Errorf("local reply %+v, want 403 %q with no headers", h.reply, "no")
	}
	if got := string(h.props["sluice\x00x"]); got != "y" {
		t.Errorf("property sluice.x = %q, want y", got)
	}
	if len(h.queue) != 0 {
		t.Errorf("queue still holds %q after the dequeue", h.queue)
	}
}
