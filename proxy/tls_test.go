package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testcerts"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// tlsProxy starts a proxy serving TLS with pairs (the first as cert_file,
// the rest as certificates) in front of a fake engine.
func tlsProxy(t *testing.T, edit func(*Config), pairs ...testcerts.Pair) *testProxy {
	t.Helper()
	up := startUpstream(t, proxytest.Options{})
	cfg := baseConfig(up.URL).WithTLS(pairs[0].CertFile, pairs[0].KeyFile)
	for _, p := range pairs[1:] {
		cfg.TLS.Certificates = append(cfg.TLS.Certificates, CertificateConfig{CertFile: p.CertFile, KeyFile: p.KeyFile})
	}
	if edit != nil {
		edit(cfg)
	}
	p := startProxy(t, cfg, Options{})
	p.URL = "https://" + p.Addr
	return p
}

// handshake dials p with cfg and returns the certificate p presented.
func handshake(t *testing.T, p *testProxy, cfg *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	c, err := tls.Dial("tcp", p.Addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestTLSClientRequest: a client that trusts the CA completes the
// handshake (ALPN http/1.1, TLS 1.2 at least) and gets its answer; the
// upstream hears X-Forwarded-Proto: https. A client offering only h2 is
// refused.
func TestTLSClientRequest(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	protos := make(chan string, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Header.Get("X-Forwarded-Proto")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(up.Close)
	p := tlsProxy(t, func(c *Config) { c.Upstreams[0].Endpoints = []string{up.URL} }, ca.Issue(t, "api", "api.test", "127.0.0.1"))
	for _, sni := range []string{"api.test", ""} { // "": by IP address, no SNI
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: sni, NextProtos: []string{"h2", "http/1.1"}}}}
		resp, body := doRequest(t, client, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != 200 || body != `{"ok":true}` {
			t.Fatalf("sni %q: %d %q", sni, resp.StatusCode, body)
		}
		if st := resp.TLS; st == nil || st.NegotiatedProtocol != "http/1.1" || st.Version < tls.VersionTLS12 {
			t.Fatalf("sni %q: TLS state %+v, want ALPN http/1.1 and TLS 1.2+", sni, st)
		}
		if proto := <-protos; proto != "https" {
			t.Fatalf("upstream heard X-Forwarded-Proto %q, want https", proto)
		}
	}
	if _, err := handshake(t, p, &tls.Config{RootCAs: ca.Pool, ServerName: "api.test", NextProtos: []string{"h2"}}); err == nil {
		t.Fatal("a client offering only h2 completed the handshake")
	}
	plain, err := http.Get("http://" + p.Addr + "/health")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP on the TLS port: %d, want 400 or a closed connection", plain.StatusCode)
		}
	}
}

// TestTLSSNIPicksCertificate: the certificate naming the client's server
// name is served; an unknown or absent name gets the first pair.
func TestTLSSNIPicksCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	p := tlsProxy(t, nil,
		ca.Issue(t, "a", "a.test"),
		ca.Issue(t, "b", "b.test", "*.b.test"),
		ca.Issue(t, "c", "c.test"))
	for sni, want := range map[string]string{"a.test": "a.test", "b.test": "b.test", "x.b.test": "b.test", "c.test": "c.test", "other.test": "a.test", "": "a.test"} {
		cert, err := handshake(t, p, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("sni %q: %v", sni, err)
		}
		if cert.Subject.CommonName != want {
			t.Errorf("sni %q: served %q, want %q", sni, cert.Subject.CommonName, want)
		}
	}
	// Verified by name, the way a client sees it.
	if _, err := handshake(t, p, &tls.Config{ServerName: "c.test", RootCAs: ca.Pool}); err != nil {
		t.Fatal(err)
	}
}

// TestTLSRefusesOldVersions: TLS 1.0 and 1.1 clients are refused; with
// min_version 1.3, TLS 1.2 is too.
func TestTLSRefusesOldVersions(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	pair := ca.Issue(t, "api", "api.test")
	p := tlsProxy(t, nil, pair)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if _, err := handshake(t, p, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool, MinVersion: v, MaxVersion: v}); err == nil {
			t.Fatalf("a TLS %s client completed the handshake", tls.VersionName(v))
		}
	}
	if _, err := handshake(t, p, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	p13 := tlsProxy(t, func(c *Config) { c.TLS.MinVersion = "1.3" }, pair)
	if _, err := handshake(t, p13, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("min_version 1.3 accepted a TLS 1.2 client")
	}
}

// TestTLSStalledHandshakeBounded: a client that opens a connection and
// stalls before or within the handshake is closed at
// client_header_timeout (1s here; asserted within 10s for a starved
// machine), as nginx's client_header_timeout covers its SSL handshake.
func TestTLSStalledHandshakeBounded(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	p := tlsProxy(t, func(c *Config) { c.ClientHeaderTimeout = Duration(time.Second) }, ca.Issue(t, "api", "api.test"))
	start := time.Now() // before the dials: the server's deadline starts later
	silent := rawConn(t, p.Addr)
	partial := rawConn(t, p.Addr)
	// A handshake record header announcing 512 bytes, and 3 of them.
	if _, err := partial.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, silent, 10*time.Second)
	expectClosed(t, partial, 10*time.Second)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("closed after %s, before client_header_timeout (1s)", d)
	}
	// A handshake that completes and then sends nothing is bounded too.
	c, err := tls.Dial("tcp", p.Addr, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosed(t, c, 10*time.Second)
}

// TestTLSHeadLimits: the request-line scan that tells 414 from 431 runs on
// the decrypted bytes.
func TestTLSHeadLimits(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	p := tlsProxy(t, func(c *Config) { c.MaxRequestHeaderSize = 4 << 10 }, ca.Issue(t, "api", "api.test"))
	long := strings.Repeat("a", 8<<10)
	for _, tc := range []struct {
		head string
		want int
	}{
		{"GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + long + "\r\n\r\n", 431},
	} {
		c, err := tls.Dial("tcp", p.Addr, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(tc.head)); err != nil {
			t.Fatal(err)
		}
		status, _, err := readStatus(c, 10*time.Second)
		c.Close()
		if err != nil || status != tc.want {
			t.Fatalf("head of %d bytes: status %d (%v), want %d", len(tc.head), status, err, tc.want)
		}
	}
}

// TestTLSOversizedBodyGets413NotReset: over TLS too, a client still
// sending an oversized body reads the 413: the server sends its
// close_notify, then lingers on the socket.
func TestTLSOversizedBodyGets413NotReset(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	p := tlsProxy(t, func(c *Config) { c.MaxRequestBodySize = 64 << 10 }, ca.Issue(t, "api", "api.test"))
	c, err := tls.Dial("tcp", p.Addr, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	const n = 16 << 20
	code, err := sendThenReadOn(t, c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(n)+"\r\n\r\n", n)
	if err != nil || code != 413 {
		t.Fatalf("status %d, err %v; want 413", code, err)
	}
	checkSlotsFree(t, p.Router())
}

// TestTLSReload: Reload serves the files' new contents from the next
// handshake; files that do not load leave the pairs in use and the error
// names the field and the file.
func TestTLSReload(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	first := ca.Issue(t, "api", "api.test")
	p := tlsProxy(t, nil, first)
	serial := func() string {
		t.Helper()
		cert, err := handshake(t, p, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool})
		if err != nil {
			t.Fatal(err)
		}
		return cert.SerialNumber.String()
	}
	if got, want := serial(), first.TLS.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("serial %s, want %s", got, want)
	}
	second := ca.Issue(t, "api2", "api.test")
	copyFile(t, second.CertFile, first.CertFile)
	copyFile(t, second.KeyFile, first.KeyFile)
	if err := p.Certificates().Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := serial(), second.TLS.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("after Reload: serial %s, want %s", got, want)
	}

	if err := os.WriteFile(first.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := p.Certificates().Reload()
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "tls" || !strings.Contains(err.Error(), first.CertFile) {
		t.Fatalf("Reload of a bad file: %v, want a *ConfigError for tls naming %s", err, first.CertFile)
	}
	if got, want := serial(), second.TLS.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("after a failed Reload: serial %s, want the old pair's %s", got, want)
	}
	// Set with new paths takes them, and Reload then reads those.
	third := ca.Issue(t, "api3", "api.test")
	if err := p.Certificates().Set(&TLSConfig{CertFile: third.CertFile, KeyFile: third.KeyFile}); err != nil {
		t.Fatal(err)
	}
	if err := p.Certificates().Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := serial(), third.TLS.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("after Set: serial %s, want %s", got, want)
	}
}

// TestTLSReloadHammer: handshakes run while the pairs are reloaded back
// and forth; each gets a whole, valid pair (run with -race).
func TestTLSReloadHammer(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	a, b := ca.Issue(t, "a", "api.test"), ca.Issue(t, "b", "api.test")
	p := tlsProxy(t, nil, a)
	store := p.Certificates()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			next := a
			if i%2 == 0 {
				next = b
			}
			if err := store.Set(&TLSConfig{CertFile: next.CertFile, KeyFile: next.KeyFile}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var hs sync.WaitGroup
	for g := 0; g < 4; g++ {
		hs.Add(1)
		go func() {
			defer hs.Done()
			for i := 0; i < 10; i++ {
				if _, err := handshake(t, p, &tls.Config{ServerName: "api.test", RootCAs: ca.Pool}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	hs.Wait()
	close(stop)
	wg.Wait()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSCertificateExpiryMetric: every served pair's NotAfter is
// exported by cert_file, with HELP and TYPE, and follows a reload that
// serves other files.
func TestTLSCertificateExpiryMetric(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	a, b := ca.Issue(t, "a", "a.test"), ca.Issue(t, "b", "b.test")
	p := tlsProxy(t, nil, a, b)
	line := func(pair testcerts.Pair) string {
		return `sluice_tls_certificate_expiry_timestamp_seconds{cert_file="` + pair.CertFile + `"} ` +
			strconv.FormatInt(pair.TLS.Leaf.NotAfter.Unix(), 10) + "\n"
	}
	scrape := func() string {
		var sb strings.Builder
		p.WriteMetrics(&sb)
		return sb.String()
	}
	got := scrape()
	for _, want := range []string{line(a), line(b), "# TYPE sluice_tls_certificate_expiry_timestamp_seconds gauge\n",
		"# HELP sluice_tls_certificate_expiry_timestamp_seconds NotAfter"} {
		if !strings.Contains(got, want) {
			t.Fatalf("scrape lacks %q:\n%s", want, got)
		}
	}
	c := ca.Issue(t, "c", "c.test")
	// c twice (a config may list a file again): one series, since a
	// scrape that repeats a series is refused whole.
	twice := &TLSConfig{CertFile: c.CertFile, KeyFile: c.KeyFile, Certificates: []CertificateConfig{{CertFile: c.CertFile, KeyFile: c.KeyFile}}}
	if err := p.Certificates().Set(twice); err != nil {
		t.Fatal(err)
	}
	if got := scrape(); !strings.Contains(got, line(c)) || strings.Contains(got, a.CertFile) || strings.Count(got, c.CertFile) != 1 {
		t.Fatalf("after Set: scrape does not show %s once and alone:\n%s", c.CertFile, got)
	}
}

// Upstream TLS: Sluice as the client of https:// endpoints.

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

// TestUpstreamClientCertificateSentWhateverAsked checks that the upstream
// client certificate is sent even when the server's CertificateRequest
// names other CAs, as Envoy and nginx send theirs: an upstream that
// checks the certificate its own way (here: any certificate, then the
// subject) must still get it. crypto/tls alone would send none.
func TestUpstreamClientCertificateSentWhateverAsked(t *testing.T) {
	clients := testcerts.NewCA(t, "clients")
	other := testcerts.NewCA(t, "other")
	up := startTLSUpstreamWith(t, func(c *tls.Config) {
		c.ClientAuth = tls.RequireAnyClientCert
		c.ClientCAs = other.Pool // named in the CertificateRequest
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if leaf.Subject.CommonName != "sluice.internal" {
				return errors.New("unexpected client certificate " + leaf.Subject.CommonName)
			}
			return nil
		}
	})
	good := clients.Issue(t, "sluice", "sluice.internal")
	p, logs := proxyTo(t, "https://localhost:"+up.port,
		&UpstreamTLSConfig{CAFile: up.ca.File, CertFile: good.CertFile, KeyFile: good.KeyFile})
	resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %q, want 200: the certificate was not sent\nlogs:\n%s", resp.StatusCode, body, logs)
	}
}
