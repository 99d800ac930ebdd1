package wasm

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

const listHeadersPkg = "wasm/testdata/guests/listheaders"

// BenchmarkListHeadersGuest measures one request through a guest written
// the way third-party-SDK plugins are (wasm/testdata/guests/listheaders):
// the whole request header list read per request, one formatted log line
// per header, one header replaced and one response header added. The
// request carries 12 headers, as a browser or an OpenAI SDK sends.
//
//   - quiet: the guest does not log (the list and the header changes only);
//   - log-dropped: it logs at info while the host logs at warn, so every
//     line is dropped — with plugins/sdk's Log*f this must cost nothing
//     more than quiet;
//   - log-written: the host logs at info (to io.Discard), every line is
//     formatted and written.
func BenchmarkListHeadersGuest(b *testing.B) {
	cases := []struct {
		name   string
		config string
		level  slog.Level
	}{
		{"quiet", "quiet", slog.LevelWarn},
		{"log-dropped", "", slog.LevelWarn},
		{"log-written", "", slog.LevelInfo},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := newTestHostWith(b, func(hc *HostConfig) {
				hc.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: c.level}))
			})
			p := loadGo(b, h, listHeadersPkg, "listheaders", c.config,
				func(pc *proxy.PluginConfig) { pc.Instances = 1 })
			defer p.Close()
			ex := newExchange("/v1/chat/completions",
				"user-agent", "OpenAI/Python 1.54.0",
				"accept", "application/json",
				"content-type", "application/json",
				"authorization", "Bearer sk-0123456789abcdefghijklmnopqrstuvwxyz",
				"x-stainless-lang", "python",
				"x-stainless-os", "Linux",
				"x-request-id", "0d4a6c1e-8b7f-4c52-9a1e-3f6b2d7c8e90",
			)
			ex.ResponseHeaders().AddString(":status", "200")
			ex.ResponseHeaders().AddString("content-type", "application/json")
			b.ReportAllocs()
			for b.Loop() {
				ex.RequestHeaders().DelString("x-bench")
				ex.ResponseHeaders().DelString("x-listheaders-resp")
				ex.ResponseHeaders().DelString("x-formatted")
				benchRequest(b, p, ex)
			}
		})
	}
}

// TestListHeadersGuest checks the benchmark's guest does what it claims:
// it logs one line per request header at info and changes the headers.
func TestListHeadersGuest(t *testing.T) {
	h := newTestHost(t) // logs at every level
	p := loadGo(t, h, listHeadersPkg, "listheaders", "")
	defer p.Close()
	ex := newExchange("/x", "user-agent", "test", "accept", "*/*")
	if err := runRequest(p, ex); err != nil {
		t.Fatal(err)
	}
	if v, _ := ex.RequestHeaders().GetString("x-bench"); string(v) != "1" {
		t.Errorf("x-bench = %q, want 1", v)
	}
	if v, _ := ex.ResponseHeaders().GetString("x-listheaders-resp"); string(v) != "1" {
		t.Errorf("x-listheaders-resp = %q, want 1", v)
	}
	if v, _ := ex.ResponseHeaders().GetString("x-formatted"); string(v) == "0" {
		t.Errorf("x-formatted = 0 with a host that logs at info")
	}
	for _, want := range []string{"request header --> :path: /x", "request header --> user-agent: test", "request header --> accept: */*"} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.logs.String())
		}
	}
}

// TestSDKSkipsFormattingBelowHostLevel: with the host logging at warn, the
// guest's LogInfof lines are neither written nor formatted.
func TestSDKSkipsFormattingBelowHostLevel(t *testing.T) {
	logs := &logBuffer{}
	h := newTestHostWith(t, func(hc *HostConfig) {
		hc.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	p := loadGo(t, h, listHeadersPkg, "listheaders", "")
	defer p.Close()
	for range 3 {
		ex := newExchange("/x", "user-agent", "test")
		if err := runRequest(p, ex); err != nil {
			t.Fatal(err)
		}
		if v, _ := ex.ResponseHeaders().GetString("x-formatted"); string(v) != "0" {
			t.Fatalf("x-formatted = %q: the guest formatted log lines the host drops", v)
		}
	}
	if strings.Contains(logs.String(), "request header -->") {
		t.Errorf("info lines logged by a host at warn:\n%s", logs.String())
	}
}
