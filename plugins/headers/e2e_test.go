//go:build !wasip1

package main

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/proxy"
)

// TestEndToEnd runs the built plugin in the real host (wasm/) on one
// request and response.
func TestEndToEnd(t *testing.T) {
	p, logs, err := pluginenv.Load(t, "plugins/headers", `{"request": {"set": {"x-model": "m", ":path": "/v2"}, "add": {"x-extra": "1"}, "remove": ["cookie"]},
		"response": {"set": {"server": "sluice"}, "remove": ["x-internal"]}}`)
	if err != nil {
		t.Fatalf("load: %v\nlogs: %s", err, logs)
	}
	ex := new(proxy.Exchange)
	req := ex.RequestHeaders()
	for _, kv := range [][2]string{{":method", "POST"}, {":path", "/v1"}, {":authority", "llm"}, {":scheme", "http"},
		{"cookie", "secret"}, {"x-model", "old"}, {"x-extra", "0"}} {
		req.AddString(kv[0], kv[1])
	}
	st, err := p.NewStream(ex)
	if err != nil {
		t.Fatal(err)
	}
	defer st.OnDone()
	if act, err := st.OnRequestHeaders(false); err != nil || act != proxy.ActionContinue {
		t.Fatalf("OnRequestHeaders = %v, %v\nlogs: %s", act, err, logs)
	}
	got := map[string][]string{}
	for i := 0; i < req.Len(); i++ {
		k, v := req.At(i)
		got[string(k)] = append(got[string(k)], string(v))
	}
	for name, want := range map[string]string{":path": "/v2", "x-model": "m", "x-extra": "0,1", "cookie": ""} {
		if g := strings.Join(got[name], ","); g != want {
			t.Errorf("request header %s = %q, want %q (all: %q)", name, g, want, got)
		}
	}
	resp := ex.ResponseHeaders()
	resp.AddString(":status", "200")
	resp.AddString("x-internal", "1")
	resp.AddString("server", "upstream")
	if act, err := st.OnResponseHeaders(false); err != nil || act != proxy.ActionContinue {
		t.Fatalf("OnResponseHeaders = %v, %v\nlogs: %s", act, err, logs)
	}
	if _, ok := resp.GetString("x-internal"); ok {
		t.Error("response header x-internal was not removed")
	}
	if v, _ := resp.GetString("server"); string(v) != "sluice" {
		t.Errorf("response header server = %q, want sluice", v)
	}
}

func TestEndToEndBadConfig(t *testing.T) {
	pluginenv.LoadFails(t, "plugins/headers", `{"request": {"add": {"bad name": "1"}}}`,
		`header name \"bad name\" is not a valid token`, `header name "bad name" is not a valid token`)
}
