package proxy

import (
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/internal/testcerts"
	"github.com/sluice-proxy/sluice/internal/testsync"
)

// tlsUpstream is an https engine whose certificate, from its own CA,
// names "localhost"; it records the server names clients sent (SNI).
type tlsUpstream struct {
	*httptest.Server
	ca   *testcerts.CA
	port string
	mu   sync.Mutex
	snis []string
}

func startTLSUpstream(t *testing.T) *tlsUpstream {
	t.Helper()
	return startTLSUpstreamWith(t, nil)
}

// startTLSUpstreamWith is startTLSUpstream with its server TLS config
// changed by edit before it starts.
func startTLSUpstreamWith(t *testing.T, edit func(*tls.Config)) *tlsUpstream {
	t.Helper()
	u := &tlsUpstream{ca: testcerts.NewCA(t, "engine")}
	pair := u.ca.Issue(t, "engine", "localhost")
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	u.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair.TLS},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			u.mu.Lock()
			u.snis = append(u.snis, h.ServerName)
			u.mu.Unlock()
			return nil, nil
		},
	}
	if edit != nil {
		edit(u.TLS)
	}
	u.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	u.StartTLS()
	t.Cleanup(u.Close)
	_, u.port, _ = net.SplitHostPort(u.Listener.Addr().String())
	return u
}

// lastSNI is the server name of the latest handshake.
func (u *tlsUpstream) lastSNI() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.snis) == 0 {
		return "(no handshake)"
	}
	return u.snis[len(u.snis)-1]
}

// proxyTo starts a proxy with one pool of endpoint url, its tls block
// set to ut, logging to the returned buffer.
func proxyTo(t *testing.T, url string, ut *UpstreamTLSConfig) (*testProxy, *testsync.LogBuffer) {
	t.Helper()
	cfg := baseConfig(url)
	cfg.Upstreams[0].TLS = ut
	cfg.Upstreams[0].Retries = new(int) // one attempt: one handshake to look at
	logs := &testsync.LogBuffer{}
	return startProxy(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}), logs
}

// TestUpstreamTLS: https endpoints are verified against ca_file or the
// system's roots, with the endpoint's host (or server_name) as SNI;
// insecure_skip_verify accepts any certificate and is logged at start.
func TestUpstreamTLS(t *testing.T) {
	up := startTLSUpstream(t)
	byName := "https://localhost:" + up.port
	byIP := "https://127.0.0.1:" + up.port
	for _, tc := range []struct {
		name, url string
		tls       *UpstreamTLSConfig
		status    int
		sni       string
		log       string // in the logs
	}{
		{"ca_file", byName, &UpstreamTLSConfig{CAFile: up.ca.File}, 200, "localhost", ""},
		{"system roots", byName, nil, 502, "localhost", "upstream TLS handshake failed"},
		{"ca_file, wrong name", byIP, &UpstreamTLSConfig{CAFile: up.ca.File}, 502, "", "127.0.0.1"},
		{"server_name", byIP, &UpstreamTLSConfig{CAFile: up.ca.File, ServerName: "localhost"}, 200, "localhost", ""},
		{"insecure_skip_verify", byName, &UpstreamTLSConfig{InsecureSkipVerify: true}, 200, "localhost", "insecure_skip_verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, logs := proxyTo(t, tc.url, tc.tls)
			resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if got := up.lastSNI(); got != tc.sni {
				t.Errorf("upstream saw SNI %q, want %q", got, tc.sni)
			}
			if tc.status == 502 && !strings.Contains(logs.String(), "certificate") {
				t.Errorf("no log names the certificate failure:\n%s", logs)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("logs lack %q:\n%s", tc.log, logs)
			}
		})
	}
}

// TestUpstreamTLSNotTLS: an https endpoint that answers in plain HTTP
// gets 502 and a log saying so.
func TestUpstreamTLSNotTLS(t *testing.T) {
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	p, logs := proxyTo(t, "https://"+plain.Listener.Addr().String(), nil)
	resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != 502 || !strings.Contains(logs.String(), "upstream TLS handshake failed") {
		t.Fatalf("status %d %q; logs:\n%s", resp.StatusCode, body, logs)
	}
}

// TestUpstreamMutualTLS: an endpoint that requires a client certificate
// from its own CA gets Sluice's cert_file/key_file pair; without one, or
// with a pair from another CA, the request fails with 502. (In TLS 1.3 the
// client's handshake is over before the server checks its certificate;
// the refusal arrives as an alert on the first read, which fasthttp
// reports as a connection closed before the first response byte.)
func TestUpstreamMutualTLS(t *testing.T) {
	clients := testcerts.NewCA(t, "clients")
	up := startTLSUpstreamWith(t, func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = clients.Pool
	})
	good := clients.Issue(t, "sluice", "sluice.internal")
	stranger := testcerts.NewCA(t, "stranger").Issue(t, "sluice", "sluice.internal")
	url := "https://localhost:" + up.port
	for _, tc := range []struct {
		name   string
		pair   *testcerts.Pair
		status int
	}{
		{"client certificate", &good, 200},
		{"none", nil, 502},
		{"from another CA", &stranger, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ut := &UpstreamTLSConfig{CAFile: up.ca.File}
			if tc.pair != nil {
				ut.CertFile, ut.KeyFile = tc.pair.CertFile, tc.pair.KeyFile
			}
			p, logs := proxyTo(t, url, ut)
			resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d\nlogs:\n%s", resp.StatusCode, body, tc.status, logs)
			}
			if tc.status == 502 && !strings.Contains(logs.String(), "status=502") {
				t.Errorf("no access line for the 502:\n%s", logs)
			}
		})
	}
}
