//go:build wasip1

// Command probe is a test guest for the wasm package. Request headers
// select what it does, so one build serves many tests:
//
//	x-probe-path: P          set :path to P (request headers)
//	x-probe-authority: A     set :authority to A
//	x-probe-upstream: U      set property sluice.upstream to U; the status
//	                         is echoed as response header x-upstream-status
//	x-probe-props: a,b       echo properties a and b (dotted names) as
//	                         response headers x-prop-<name>: integers as
//	                         decimal, maps as their pair count, else raw
//	x-probe-setprop: k=v     set property k to v in the request phase
//	x-probe-echo: V          answer with response header x-echo: V
//	x-probe-pause: 1         pause the request headers; a tick resumes it
//	                         through proxy_set_effective_context
//	x-probe-req-body: S      append S to the request body
//	x-probe-resp-body: S     buffer the response body and replace it by S
//	x-probe-deny: CODE       local response CODE, body "denied by probe"
//	x-probe-action: N        return action N from the request headers
//	x-probe-panic: CALLBACK  panic in CALLBACK (request_headers, response_headers, log)
//	x-probe-loop: 1          spin forever in the request headers
//	x-probe-grow: N          allocate N MiB in the request headers
//
// On start it logs "probe: root ..." lines with what the root context sees.
package main

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

func main() {}

func init() { sdk.SetPluginContext(func(uint32) sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	paused []uint32
}

var root *plugin

func (p *plugin) OnPluginStart(int) bool {
	root = p
	for _, name := range []string{"plugin_name", "plugin_vm_id", "plugin_root_id", "request.path"} {
		v, err := sdk.GetProperty(strings.Split(name, "."))
		sdk.LogInfof("probe: root %s=%q err=%v", name, v, err)
	}
	sdk.LogInfof("probe: root resume err=%v", sdk.ResumeHttpRequest())
	_, err := sdk.GetHttpRequestHeader(":path")
	sdk.LogInfof("probe: root header err=%v", err)
	cfg, _ := sdk.GetPluginConfiguration()
	sdk.LogInfof("probe: root config=%q", cfg)
	if err := sdk.SetTickPeriodMilliSeconds(1); err != nil {
		sdk.LogErrorf("probe: tick: %v", err)
		return false
	}
	return true
}

func (p *plugin) OnTick() {
	kept := p.paused[:0]
	for _, id := range p.paused {
		if err := sdk.SetEffectiveContext(id); err != nil {
			kept = append(kept, id) // not paused yet: retry on the next tick
			continue
		}
		if err := sdk.ResumeHttpRequest(); err != nil {
			sdk.LogErrorf("probe: resume %d: %v", id, err)
		}
	}
	p.paused = kept
}

func (p *plugin) NewHttpContext(id uint32) sdk.HttpContext { return &stream{id: id} }

type stream struct {
	sdk.DefaultHttpContext
	id       uint32
	echo     string
	upstream string
	props    string
	respBody string
	panicAt  string
}

func header(name string) string {
	v, _ := sdk.GetHttpRequestHeader(name)
	return v
}

func (s *stream) OnHttpRequestHeaders(int, bool) sdk.Action {
	s.echo = header("x-probe-echo")
	s.props = header("x-probe-props")
	s.respBody = header("x-probe-resp-body")
	s.panicAt = header("x-probe-panic")
	if s.panicAt == "request_headers" {
		panic("probe: asked to panic")
	}
	if header("x-probe-loop") != "" {
		for {
		}
	}
	if n, _ := strconv.Atoi(header("x-probe-grow")); n > 0 {
		var keep [][]byte
		for i := 0; i < n; i++ {
			keep = append(keep, make([]byte, 1<<20))
		}
		sdk.LogInfof("probe: grew %d MiB", len(keep))
	}
	if v := header("x-probe-path"); v != "" {
		must(sdk.SetHttpRequestHeader(":path", v))
	}
	if v := header("x-probe-authority"); v != "" {
		must(sdk.SetHttpRequestHeader(":authority", v))
	}
	if v := header("x-probe-upstream"); v != "" {
		s.upstream = statusOf(sdk.SetProperty([]string{"sluice", "upstream"}, []byte(v)))
	}
	if v := header("x-probe-setprop"); v != "" {
		k, val, _ := strings.Cut(v, "=")
		must(sdk.SetProperty(strings.Split(k, "."), []byte(val)))
	}
	if v := header("x-probe-deny"); v != "" {
		code, _ := strconv.Atoi(v)
		must(sdk.SendHttpResponse(uint32(code), [][2]string{{"x-denied", "yes"}}, []byte("denied by probe"), -1))
		return sdk.ActionPause
	}
	if v := header("x-probe-action"); v != "" {
		n, _ := strconv.Atoi(v)
		return sdk.Action(n)
	}
	if header("x-probe-pause") != "" {
		root.paused = append(root.paused, s.id)
		return sdk.ActionPause
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpRequestBody(_ int, eos bool) sdk.Action {
	if v := header("x-probe-req-body"); v != "" && eos {
		must(sdk.AppendHttpRequestBody([]byte(v)))
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) sdk.Action {
	if s.panicAt == "response_headers" {
		panic("probe: asked to panic")
	}
	if s.echo != "" {
		must(sdk.AddHttpResponseHeader("x-echo", s.echo))
	}
	if s.upstream != "" {
		must(sdk.AddHttpResponseHeader("x-upstream-status", s.upstream))
	}
	for _, name := range strings.Split(s.props, ",") {
		if name == "" {
			continue
		}
		v, err := sdk.GetProperty(strings.Split(name, "."))
		val := statusOf(err)
		if err == nil {
			val = render(name, v)
		}
		must(sdk.AddHttpResponseHeader("x-prop-"+name, val))
	}
	if s.respBody != "" {
		must(sdk.RemoveHttpResponseHeader("content-length"))
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpResponseBody(_ int, eos bool) sdk.Action {
	if s.respBody == "" {
		return sdk.ActionContinue
	}
	if !eos {
		return sdk.ActionPause // buffer until the whole body is there
	}
	must(sdk.ReplaceHttpResponseBody([]byte(s.respBody)))
	return sdk.ActionContinue
}

func (s *stream) OnHttpStreamDone() {
	if s.panicAt == "log" {
		panic("probe: asked to panic")
	}
}

func render(name string, v []byte) string {
	switch name {
	case "request.time", "request.size", "response.code", "source.port", "destination.port",
		"sluice.active_requests", "sluice.max_concurrent_requests":
		if len(v) != 8 {
			return "bad-int-len-" + strconv.Itoa(len(v))
		}
		return strconv.FormatInt(int64(binary.LittleEndian.Uint64(v)), 10)
	case "request.headers", "response.headers":
		if len(v) < 4 {
			return "0"
		}
		return strconv.Itoa(int(binary.LittleEndian.Uint32(v)))
	}
	return string(v)
}

func statusOf(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func must(err error) {
	if err != nil {
		sdk.LogErrorf("probe: %v", err)
	}
}
