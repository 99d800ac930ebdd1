package wasm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testcerts"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestHTTPCalloutsTLS: a pool's tls applies to plugin callouts as to
// proxied requests: its ca_file is trusted, the system's roots alone are
// not, and a bad ca_file fails resolving the config.
func TestHTTPCalloutsTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "engine")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "over tls")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "engine", "localhost").TLS}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "https://localhost:" + port
	c, err := NewHTTPCallouts(resolvedPools(t,
		proxy.UpstreamConfig{Name: "trusted", Endpoints: []string{url}, TLS: &proxy.UpstreamTLSConfig{CAFile: ca.File}},
		proxy.UpstreamConfig{Name: "system", Endpoints: []string{url}},
	), HTTPCalloutsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func(pool string) (*CalloutResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Do(ctx, pool, &CalloutRequest{Method: "GET", Path: "/", Authority: "engine.test"})
	}
	if resp, err := call("trusted"); err != nil || string(resp.Body) != "over tls" {
		t.Fatalf("pool with ca_file: %v %+v", err, resp)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := call("system"); !errors.As(err, &unknown) {
		t.Fatalf("pool without ca_file: %v, want an unknown-authority error", err)
	}
	// A bad ca_file is refused where endpoints are resolved, once, for
	// the proxy and the callouts alike.
	cfg := config.New()
	cfg.Upstreams = []proxy.UpstreamConfig{{Name: "bad", Endpoints: []string{url}, TLS: &proxy.UpstreamTLSConfig{CAFile: "/nonexistent/ca.pem"}}}
	if _, err = cfg.Resolve(); err == nil || !strings.Contains(err.Error(), "ca_file") || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Fatalf("bad ca_file: %v", err)
	}
}
