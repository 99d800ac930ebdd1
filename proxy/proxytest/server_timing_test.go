package proxytest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Benchmarks of one round trip through the fake upstream, so benchmark
// results elsewhere can subtract its share.

func benchmarkRoundTrip(b *testing.B, path, body string) {
	s := NewServer(Options{})
	defer s.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Post(s.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func BenchmarkChatCompletion(b *testing.B) { benchmarkRoundTrip(b, pathChat, chatBody) }

func BenchmarkChatStream(b *testing.B) {
	benchmarkRoundTrip(b, pathChat, `{"stream":true,"stream_options":{"include_usage":true},`+chatBody[1:])
}

func BenchmarkGenerateStream(b *testing.B) { benchmarkRoundTrip(b, pathGenStream, `{"inputs":"hi"}`) }
