//go:build wasip1

// Command rawcalls is a test guest for the wasm package: it makes host
// calls with arguments the test chooses, including bytes no HTTP header
// can carry (names and values travel hex-encoded), and reports what the
// host answered. Request headers select what it does:
//
//	x-raw-op: OP           one header write in the request headers, with
//	                       name x-raw-name and value x-raw-value (both
//	                       hex): add (proxy_add_header_map_value),
//	                       replace (proxy_replace_header_map_value),
//	                       pairs (read the request map, set or append the
//	                       pair, proxy_set_header_map_pairs), local
//	                       (proxy_send_local_response 299 with that one
//	                       header), dispatch (proxy_http_call, below).
//	                       The result is answered as x-raw-status: "ok"
//	                       or the SDK's error ("…: BAD_ARGUMENT").
//	x-raw-pool: P          dispatch: the upstream pool (default "callout")
//	x-raw-count: N         dispatch: N calls at once (default 1); the
//	                       request pauses until every reply arrived and
//	                       answers each as x-raw-call-<i>:
//	                       "<status> <body>". Every call carries
//	                       ":method" GET, ":path" /callout, ":authority"
//	                       callout.test, with the pair from x-raw-name /
//	                       x-raw-value (when x-raw-name is present, even
//	                       empty) set over them (or added).
//	x-raw-env: K1,K2       answer x-raw-env: "K1=<os.Getenv(K1)>;…" and
//	                       x-raw-environ: os.Environ() joined with ';'
//	x-raw-print: N         write N lines to stdout, N to stderr and N
//	                       proxy_log info messages
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

func main() {}

func init() { sdk.SetPluginContext(func(uint32) sdk.PluginContext { return &plugin{} }) }

type plugin struct{ sdk.DefaultPluginContext }

func (*plugin) NewHttpContext(id uint32) sdk.HttpContext { return &stream{id: id} }

type stream struct {
	sdk.DefaultHttpContext
	id      uint32
	answers [][2]string
	calls   []string
	pending int
}

func header(name string) string {
	v, _ := sdk.GetHttpRequestHeader(name)
	return v
}

func unhex(name string) string {
	b, err := hex.DecodeString(header(name))
	if err != nil {
		sdk.LogErrorf("rawcalls: %s: %v", name, err)
	}
	return string(b)
}

func (s *stream) answer(k, v string) { s.answers = append(s.answers, [2]string{k, v}) }

func result(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

func (s *stream) OnHttpRequestHeaders(int, bool) sdk.Action {
	if keys := header("x-raw-env"); keys != "" {
		var parts []string
		for _, k := range strings.Split(keys, ",") {
			parts = append(parts, k+"="+os.Getenv(k))
		}
		s.answer("x-raw-env", strings.Join(parts, ";"))
		s.answer("x-raw-environ", strings.Join(os.Environ(), ";"))
	}
	if n, _ := strconv.Atoi(header("x-raw-print")); n > 0 {
		for i := 0; i < n; i++ {
			fmt.Println("rawcalls stdout line", i)
			fmt.Fprintln(os.Stderr, "rawcalls stderr line", i)
			sdk.LogInfof("rawcalls log line %d", i)
		}
	}
	name, value := unhex("x-raw-name"), unhex("x-raw-value")
	switch header("x-raw-op") {
	case "add":
		s.answer("x-raw-status", result(sdk.AddHttpRequestHeader(name, value)))
	case "replace":
		s.answer("x-raw-status", result(sdk.SetHttpRequestHeader(name, value)))
	case "pairs":
		hs, err := sdk.GetHttpRequestHeaders()
		if err == nil {
			err = sdk.ReplaceHttpRequestHeaders(setPair(hs, name, value))
		}
		s.answer("x-raw-status", result(err))
	case "local":
		err := sdk.SendHttpResponse(299, [][2]string{{name, value}}, []byte("local"), -1)
		if err == nil {
			return sdk.ActionPause
		}
		s.answer("x-raw-status", result(err))
	case "dispatch":
		return s.dispatch(name, value)
	}
	return sdk.ActionContinue
}

// setPair replaces the first field named name (case-insensitively) with
// value, or appends the pair.
func setPair(hs [][2]string, name, value string) [][2]string {
	for i := range hs {
		if strings.EqualFold(hs[i][0], name) {
			hs[i][1] = value
			return hs
		}
	}
	return append(hs, [2]string{name, value})
}

func (s *stream) dispatch(name, value string) sdk.Action {
	pool := header("x-raw-pool")
	if pool == "" {
		pool = "callout"
	}
	n, _ := strconv.Atoi(header("x-raw-count"))
	n = max(n, 1)
	s.calls = make([]string, n)
	for i := 0; i < n; i++ {
		hdrs := [][2]string{{":method", "GET"}, {":path", "/callout"}, {":authority", "callout.test"}}
		if _, err := sdk.GetHttpRequestHeader("x-raw-name"); err == nil {
			hdrs = setPair(hdrs, name, value)
		}
		_, err := sdk.DispatchHttpCall(pool, hdrs, nil, nil, 5000, func(numHeaders, bodySize, _ int) {
			s.onReply(i, numHeaders, bodySize)
		})
		if err != nil {
			s.answer("x-raw-status", result(err))
			return sdk.ActionContinue
		}
		s.pending++
	}
	s.answer("x-raw-status", "ok")
	return sdk.ActionPause
}

func (s *stream) onReply(i, numHeaders, bodySize int) {
	r := "failed"
	if numHeaders > 0 {
		status := ""
		if hs, err := sdk.GetHttpCallResponseHeaders(); err == nil {
			for _, kv := range hs {
				if kv[0] == ":status" {
					status = kv[1]
				}
			}
		}
		body, err := sdk.GetHttpCallResponseBody(0, bodySize)
		r = status + " " + result(err) + " " + string(body)
	}
	s.calls[i] = r
	s.pending--
	if s.pending > 0 {
		return
	}
	if err := sdk.SetEffectiveContext(s.id); err == nil {
		_ = sdk.ResumeHttpRequest()
	}
}

func (s *stream) OnHttpResponseHeaders(int, bool) sdk.Action {
	for _, kv := range s.answers {
		_ = sdk.AddHttpResponseHeader(kv[0], kv[1])
	}
	for i, r := range s.calls {
		_ = sdk.AddHttpResponseHeader("x-raw-call-"+strconv.Itoa(i), r)
	}
	return sdk.ActionContinue
}
