package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// TLSConfig turns on TLS for clients: the listener serves HTTPS only. It
// holds one certificate pair, several, or both:
//
//	tls:
//	  cert_file: /etc/sluice/tls/api.example.com.crt
//	  key_file: /etc/sluice/tls/api.example.com.key
//	  certificates:
//	    - {cert_file: /etc/sluice/tls/other.crt, key_file: /etc/sluice/tls/other.key}
//
// Each handshake gets the first pair, in that order (cert_file first),
// whose certificate is valid for the server name the client sent (SNI)
// and that the client can use; when none is, the first pair, as nginx
// answers with its default server's certificate and Envoy with its first
// tls_certificates entry. TLS 1.2 is the minimum (min_version "1.3" raises
// it); cipher suites are Go's defaults (ECDHE with AES-GCM or
// ChaCha20-Poly1305); ALPN offers http/1.1 only. The files are read when
// the config is validated (a bad file is an error naming it, as nginx -t
// reports one) and again on reload (proxy.CertStore.Reload).
type TLSConfig struct {
	// CertFile is a PEM certificate chain, leaf first; KeyFile its PEM
	// private key. Set both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Certificates are more pairs, after CertFile's.
	Certificates []CertificateConfig `yaml:"certificates"`
	// MinVersion is the oldest TLS version accepted: "1.2" (default) or
	// "1.3".
	MinVersion string `yaml:"min_version"`
}

// CertificateConfig is one certificate chain and its key, as PEM files.
type CertificateConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// UpstreamTLSConfig sets how a pool's https:// endpoints are verified.
// Without it they are verified against the system's roots, with the
// endpoint's host as server name (SNI) and TLS 1.2 at least, as with it
// and no field set. nginx verifies nothing and sends no SNI unless told
// (proxy_ssl_verify, proxy_ssl_server_name); Envoy's default is also not
// to verify: Sluice verifies unless insecure_skip_verify says otherwise.
type UpstreamTLSConfig struct {
	// CAFile is a PEM file of the certificates to trust instead of the
	// system's roots. Default "": the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is sent as SNI and verified instead of the endpoint's
	// host (for endpoints given by IP address). Default "": the host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: the connection is
	// encrypted but not authenticated. Logged as a warning at start.
	// Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// CertFile and KeyFile are a PEM certificate and its key that Sluice
	// presents when the endpoint asks for a client certificate (mutual
	// TLS, Envoy's tls_certificates in an UpstreamTlsContext, nginx's
	// proxy_ssl_certificate). Both or neither; read at start and at each
	// reload. Default "": no client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// TLS versions for TLSConfig.MinVersion.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// Pairs lists the certificate pairs in the order handshakes try them.
func (t *TLSConfig) Pairs() []CertificateConfig {
	var out []CertificateConfig
	if t.CertFile != "" || t.KeyFile != "" {
		out = append(out, CertificateConfig{CertFile: t.CertFile, KeyFile: t.KeyFile})
	}
	return append(out, t.Certificates...)
}

// LoadCertificates reads every pair's files, in Pairs order. An error is
// a *Error naming the field and the file.
func (t *TLSConfig) LoadCertificates() ([]tls.Certificate, error) {
	pairs := t.Pairs()
	if len(pairs) == 0 {
		return nil, fieldErr("tls", "needs cert_file and key_file, or certificates")
	}
	first := 0 // pairs[first+j] is certificates[j]
	if t.CertFile != "" || t.KeyFile != "" {
		first = 1
	}
	out := make([]tls.Certificate, 0, len(pairs))
	for i, p := range pairs {
		f := "tls"
		if j := i - first; j >= 0 {
			f = "tls.certificates[" + strconv.Itoa(j) + "]"
		}
		c, err := p.load(f)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// load reads the pair, whose place in the config is field ("tls",
// "tls.certificates[0]"; "" for an upstream's tls block, whose keys stand
// alone). Errors are *Error naming field.cert_file or field.key_file and
// the file, or field itself (cert_file in an upstream block) when the two
// files do not make a pair.
func (p CertificateConfig) load(field string) (tls.Certificate, error) {
	key, pair := func(k string) string { return field + "." + k }, field
	if field == "" {
		key, pair = func(k string) string { return k }, "cert_file"
	}
	switch {
	case p.CertFile == "":
		return tls.Certificate{}, fieldErr(key("cert_file"), "must be set with key_file %q", p.KeyFile)
	case p.KeyFile == "":
		return tls.Certificate{}, fieldErr(key("key_file"), "must be set with cert_file %q", p.CertFile)
	}
	if _, err := os.Stat(p.CertFile); err != nil {
		return tls.Certificate{}, fieldErr(key("cert_file"), "%v", err)
	}
	if _, err := os.Stat(p.KeyFile); err != nil {
		return tls.Certificate{}, fieldErr(key("key_file"), "%v", err)
	}
	c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return tls.Certificate{}, fieldErr(pair, "cert_file %s, key_file %s: %v", p.CertFile, p.KeyFile, err)
	}
	return c, nil
}

// minVersion is MinVersion as a crypto/tls constant, or 0 when it is not
// a version Sluice accepts.
func (t *TLSConfig) minVersion() uint16 {
	switch t.MinVersion {
	case "", TLSVersion12:
		return tls.VersionTLS12
	case TLSVersion13:
		return tls.VersionTLS13
	}
	return 0
}

// ServerTLS is the client-facing TLS settings Resolve checked: the pairs
// read once, to validate them (a server keeps its own copy, re-read on
// reload).
type ServerTLS struct {
	// Config is the TLSConfig resolved.
	Config *TLSConfig
	// Certificates are the pairs as read, in Pairs order.
	Certificates []tls.Certificate
	// MinVersion is a crypto/tls version constant.
	MinVersion uint16
}

// resolveTLS checks the client-facing TLS block and reads its files; nil
// without one.
func (c *Config) resolveTLS() (*ServerTLS, error) {
	if c.TLS == nil {
		return nil, nil
	}
	v := c.TLS.minVersion()
	if v == 0 {
		return nil, fieldErr("tls.min_version", "must be %q or %q, got %q", TLSVersion12, TLSVersion13, c.TLS.MinVersion)
	}
	certs, err := c.TLS.LoadCertificates()
	if err != nil {
		return nil, err
	}
	return &ServerTLS{Config: c.TLS, Certificates: certs, MinVersion: v}, nil
}

// resolveUpstreamTLS builds the client TLS settings of pool f's https
// endpoints: nil when it has none.
func resolveUpstreamTLS(f string, u *UpstreamConfig, eps []Endpoint) (*tls.Config, error) {
	https := false
	for _, ep := range eps {
		https = https || ep.TLS
	}
	if !https {
		if u.TLS != nil {
			return nil, fieldErr(f+".tls", "is set but no endpoint is https://")
		}
		return nil, nil
	}
	cfg, err := u.TLS.ClientConfig()
	if ce, ok := err.(*Error); ok {
		return nil, fieldErr(f+".tls."+ce.Field, "%s", ce.Reason)
	}
	return cfg, err
}

// ClientConfig returns the crypto/tls client settings t describes, for
// connections to a pool's https:// endpoints: TLS 1.2 at least, RootCAs
// read from CAFile (nil, the system's roots, without one), ServerName and
// InsecureSkipVerify as set, and the client certificate of CertFile and
// KeyFile when set (sent whenever the server asks for one). A nil t
// gives the defaults. The error is a *Error naming the field within t
// ("ca_file", "cert_file", "key_file"). Each call reads the files again
// and returns a new config.
func (t *UpstreamTLSConfig) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t == nil {
		return cfg, nil
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		return nil, fieldErr("ca_file", "is unused with insecure_skip_verify: set one of them")
	}
	cfg.InsecureSkipVerify = t.InsecureSkipVerify
	cfg.ServerName = t.ServerName
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fieldErr("ca_file", "%v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return nil, fieldErr("ca_file", "%s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		pair, err := CertificateConfig{CertFile: t.CertFile, KeyFile: t.KeyFile}.load("")
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
		// Send it whatever the server's CertificateRequest names, as
		// Envoy and nginx (proxy_ssl_certificate) do: crypto/tls alone
		// sends a certificate only when its issuer is among the
		// request's acceptable CAs, and else none at all.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return cfg, nil
}

// UnmarshalYAML implements yaml.Unmarshaler, rejecting unknown keys (a
// pool is decoded node by node, without the top-level decoder's
// KnownFields, which TLSConfig gets).
func (t *UpstreamTLSConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain UpstreamTLSConfig
	return decodeStrict(n, (*plain)(t), "proxy.UpstreamTLSConfig")
}
