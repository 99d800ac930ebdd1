//go:build !wasip1

package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/redistest"
)

// BenchmarkRateLimit compares one admitted request through a replica in
// local scope and in cluster scope (default sync mode, a real Redis):
// cluster scope adds no Redis call to the request path, so both cost the
// same per request (numbers in README.md, "Cluster scope").
func BenchmarkRateLimit(b *testing.B) {
	for _, scope := range []string{"local", "cluster"} {
		b.Run(scope, func(b *testing.B) {
			rs := redistest.Start(b)
			cfg := `{"requests_per_minute": 1000000000, "scope": "` + scope + `"}`
			e := replicas(b, 1, rs.Addr, cfg)[0]
			req := func() {
				r, _ := http.NewRequest("POST", e.URL+"/v1/chat/completions", strings.NewReader(chat))
				r.Header.Set("x-sluice-tenant", "bench")
				resp, err := e.Client.Do(r)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			req()
			b.ResetTimer()
			for range b.N {
				req()
			}
		})
	}
}
