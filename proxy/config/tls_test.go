package config

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/testcerts"
)

// TestTLSParse: both shapes of the tls block parse, in handshake order,
// and upstream tls resolves to a client config.
func TestTLSParse(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	a, b := ca.Issue(t, "a", "a.test"), ca.Issue(t, "b", "b.test")
	cfg := mustParseValid(t, `
tls:
  cert_file: `+a.CertFile+`
  key_file: `+a.KeyFile+`
  certificates:
    - {cert_file: `+b.CertFile+`, key_file: `+b.KeyFile+`}
  min_version: "1.3"
upstreams:
  - name: engines
    endpoints: ["https://engine.internal:8443", "http://127.0.0.1:8000"]
    tls: {ca_file: `+ca.File+`, server_name: engine.test}
`)
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if rc.TLS == nil || len(rc.TLS.Certificates) != 2 || rc.TLS.MinVersion != tls.VersionTLS13 ||
		rc.TLS.Certificates[1].Leaf.DNSNames[0] != "b.test" {
		t.Fatalf("server TLS %+v", rc.TLS)
	}
	ut := rc.Upstreams[0].TLS
	if ut == nil || ut.RootCAs == nil || ut.ServerName != "engine.test" || ut.InsecureSkipVerify || ut.MinVersion != tls.VersionTLS12 {
		t.Fatalf("upstream TLS %+v", ut)
	}
	list := mustParseValid(t, "tls: {certificates: [{cert_file: "+b.CertFile+", key_file: "+b.KeyFile+"}]}\nupstreams: [{name: a, endpoints: [\"https://x.test\"]}]")
	rc, err = list.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.TLS.Certificates) != 1 || rc.TLS.MinVersion != tls.VersionTLS12 || rc.Upstreams[0].TLS == nil || rc.Upstreams[0].TLS.RootCAs != nil {
		t.Fatalf("list form: %+v; upstream %+v", rc.TLS, rc.Upstreams[0].TLS)
	}
	checkParseRejects(t, []parseCase{
		{"unknown tls key", "tls: {cert: x}", "field cert not found"},
		{"unknown certificate key", "tls: {certificates: [{cert_file: x, key: y}]}", "field key not found"},
		{"unknown upstream tls key", "upstreams: [{name: a, endpoints: [\"https://x\"], tls: {verify: false}}]", "field verify not found"},
	})
}

// TestTLSRejects: every bad tls setting is an error naming the field, and
// a bad file is named too.
func TestTLSRejects(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	a, b := ca.Issue(t, "a", "a.test"), ca.Issue(t, "b", "b.test")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	ok := func() *Config {
		return New().WithUpstream("a", "https://a.test").WithTLS(a.CertFile, a.KeyFile)
	}
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		field string
		file  string // named in the error
	}{
		{"empty block", func(c *Config) { c.TLS = &TLSConfig{} }, "tls", ""},
		{"cert without key", func(c *Config) { c.TLS.KeyFile = "" }, "tls.key_file", a.CertFile},
		{"key without cert", func(c *Config) { c.TLS.CertFile = "" }, "tls.cert_file", a.KeyFile},
		{"missing cert file", func(c *Config) { c.TLS.CertFile = missing }, "tls.cert_file", missing},
		{"missing key file", func(c *Config) { c.TLS.KeyFile = missing }, "tls.key_file", missing},
		{"not a certificate", func(c *Config) { c.TLS.CertFile = garbage }, "tls", garbage},
		{"key of another pair", func(c *Config) { c.TLS.KeyFile = b.KeyFile }, "tls", b.KeyFile},
		{"bad second pair", func(c *Config) {
			c.TLS.Certificates = []CertificateConfig{{CertFile: b.CertFile, KeyFile: b.KeyFile}, {CertFile: missing, KeyFile: b.KeyFile}}
		}, "tls.certificates[1].cert_file", missing},
		{"bad first of list", func(c *Config) {
			c.TLS = &TLSConfig{Certificates: []CertificateConfig{{CertFile: garbage, KeyFile: b.KeyFile}}}
		}, "tls.certificates[0]", garbage},
		{"min_version", func(c *Config) { c.TLS.MinVersion = "1.1" }, "tls.min_version", ""},
		{"missing ca_file", func(c *Config) { c.Upstreams[0].TLS = &UpstreamTLSConfig{CAFile: missing} }, "upstreams[0].tls.ca_file", missing},
		{"ca_file without certificates", func(c *Config) { c.Upstreams[0].TLS = &UpstreamTLSConfig{CAFile: a.KeyFile} }, "upstreams[0].tls.ca_file", a.KeyFile},
		{"ca_file and insecure", func(c *Config) {
			c.Upstreams[0].TLS = &UpstreamTLSConfig{CAFile: ca.File, InsecureSkipVerify: true}
		}, "upstreams[0].tls.ca_file", ""},
		{"client cert without key", func(c *Config) {
			c.Upstreams[0].TLS = &UpstreamTLSConfig{CertFile: a.CertFile}
		}, "upstreams[0].tls.key_file", a.CertFile},
		{"client key without cert", func(c *Config) {
			c.Upstreams[0].TLS = &UpstreamTLSConfig{KeyFile: a.KeyFile}
		}, "upstreams[0].tls.cert_file", a.KeyFile},
		{"missing client cert", func(c *Config) {
			c.Upstreams[0].TLS = &UpstreamTLSConfig{CertFile: missing, KeyFile: a.KeyFile}
		}, "upstreams[0].tls.cert_file", missing},
		{"client key of another pair", func(c *Config) {
			c.Upstreams[0].TLS = &UpstreamTLSConfig{CertFile: a.CertFile, KeyFile: b.KeyFile}
		}, "upstreams[0].tls.cert_file", b.KeyFile},
		{"tls on a plain pool", func(c *Config) {
			c.Upstreams[0].Endpoints = []string{"http://a.test"}
			c.Upstreams[0].TLS = &UpstreamTLSConfig{CAFile: ca.File}
		}, "upstreams[0].tls", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tls := *c.TLS
			c.TLS = &tls
			c.Upstreams = append([]UpstreamConfig(nil), c.Upstreams...)
			tc.edit(c)
			err := c.Validate()
			var ce *Error
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("Validate() = %v, want a *Error for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("error %q does not name %s", err, tc.file)
			}
		})
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
}
