package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// TLS for clients (config key tls). The listener's tls.Config is built
// once; its GetCertificate reads the certificate pairs through an atomic
// pointer, so a reload swaps them without touching the listener, and a
// handshake in progress keeps the pair it got.

// CertStore holds the certificate pairs the listener serves, chosen per
// handshake by the server name the client sent (SNI). Build it with
// NewCertStore; it is safe for concurrent use.
type CertStore struct {
	mu    sync.Mutex // serializes Reload and Set
	cfg   *config.TLSConfig
	certs atomic.Pointer[[]tls.Certificate]
	// expiry is what sluice_tls_certificate_expiry_timestamp_seconds
	// reports for the pairs served now, swapped with certs.
	expiry atomic.Pointer[[]certExpiry]
}

// certExpiry is one served pair's certificate file and the NotAfter of
// its leaf, in Unix seconds.
type certExpiry struct {
	file     string
	notAfter float64
}

// NewCertStore reads the pairs of t. The error is a *config.Error naming
// the field and the file.
func NewCertStore(t *config.TLSConfig) (*CertStore, error) {
	s := &CertStore{}
	if err := s.Set(t); err != nil {
		return nil, err
	}
	return s, nil
}

// newCertStore is NewCertStore with the pairs Resolve read already.
func newCertStore(st *config.ServerTLS) *CertStore {
	s := &CertStore{cfg: st.Config}
	s.store(st.Config, st.Certificates)
	return s
}

// store serves certs, read from t's pairs in Pairs order.
func (s *CertStore) store(t *config.TLSConfig, certs []tls.Certificate) {
	pairs := t.Pairs()
	exp := make([]certExpiry, 0, len(certs))
	for i := range certs {
		leaf := certs[i].Leaf
		if leaf == nil && len(certs[i].Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(certs[i].Certificate[0])
		}
		if leaf == nil || i >= len(pairs) || slices.ContainsFunc(exp, func(e certExpiry) bool { return e.file == pairs[i].CertFile }) {
			continue // a file listed twice is one series (a scrape may not repeat one)
		}
		exp = append(exp, certExpiry{file: pairs[i].CertFile, notAfter: float64(leaf.NotAfter.Unix())})
	}
	s.certs.Store(&certs)
	s.expiry.Store(&exp)
}

// writeExpiry writes sluice_tls_certificate_expiry_timestamp_seconds for
// every pair served now, labelled by its cert_file, as the x509 and
// blackbox exporters report NotAfter (alert on it minus time()).
func (s *CertStore) writeExpiry(w io.Writer) {
	exp := *s.expiry.Load()
	if len(exp) == 0 {
		return
	}
	// The HELP text is filled in by exposition.Write (router.go).
	io.WriteString(w, "# HELP sluice_tls_certificate_expiry_timestamp_seconds\n# TYPE sluice_tls_certificate_expiry_timestamp_seconds gauge\n")
	for _, e := range exp {
		fmt.Fprintf(w, "sluice_tls_certificate_expiry_timestamp_seconds{cert_file=\"%s\"} %.0f\n", escapeLabel(e.file), e.notAfter)
	}
}

// Reload reads the current files again (the same paths) and, only when
// every pair reads and parses, serves them from the next handshake on.
// On error the pairs in use stay, and the error names the field and the
// file. The SIGHUP reload calls it.
func (s *CertStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load(s.cfg)
}

// Set reads the pairs of t (new paths, say, from a reloaded config) and,
// only when all of them load, serves them from the next handshake on and
// makes t what Reload reads. On error nothing changes. min_version is
// the listener's and is not changed by Set.
func (s *CertStore) Set(t *config.TLSConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load(t)
}

// load is Set with s.mu held.
func (s *CertStore) load(t *config.TLSConfig) error {
	if t == nil {
		return errors.New("proxy: tls: no tls config to load")
	}
	certs, err := t.LoadCertificates()
	if err != nil {
		return err
	}
	s.cfg = t
	s.store(t, certs)
	return nil
}

// Certificates returns the pairs served now (shared: do not change).
func (s *CertStore) Certificates() []tls.Certificate { return *s.certs.Load() }

// getCertificate is the listener's tls.Config.GetCertificate: the first
// pair the client can use and whose certificate names the server name it
// sent, else the first pair (crypto/tls chooses among
// tls.Config.Certificates the same way; nginx answers with the default
// server's certificate, Envoy with its first).
func (s *CertStore) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *s.certs.Load()
	for i := range certs {
		if hello.SupportsCertificate(&certs[i]) == nil {
			return &certs[i], nil
		}
	}
	return &certs[0], nil
}

// serverTLSConfig is the listener's TLS config: certificates from s,
// TLS 1.2 at least (min), Go's default cipher suites, ALPN http/1.1
// only (fasthttp speaks HTTP/1.1).
func (s *CertStore) serverTLSConfig(min uint16) *tls.Config {
	return &tls.Config{
		MinVersion:     min,
		GetCertificate: s.getCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}

// tlsEdgeConn is a client's TLS connection over its edgeConn. The head's
// request-line scan (for 414 versus 431) runs here, on the plaintext; the
// edgeConn under it keeps the socket: lingering close (after the TLS
// close_notify) and the raw fd the disconnect watcher polls.
//
// The handshake runs on the first Read, under the read deadline fasthttp
// sets for a new connection's first request byte (client_header_timeout):
// a client that starts a handshake and stalls is closed at that timeout,
// as nginx's client_header_timeout covers its SSL handshake.
type tlsEdgeConn struct {
	*tls.Conn
	edge *edgeConn
}

// Read implements net.Conn.
func (c *tlsEdgeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.edge.scanLine(p[:n])
	return n, err
}

// SyscallConn implements syscall.Conn with the TCP connection's.
func (c *tlsEdgeConn) SyscallConn() (syscall.RawConn, error) { return c.edge.SyscallConn() }

var _ syscall.Conn = (*tlsEdgeConn)(nil)

// logTLSFailure logs err when it is a failed TLS handshake with ep: an
// untrusted or misnamed certificate, an endpoint that does not speak TLS,
// or one that refused Sluice's hello. These are configuration faults
// (ca_file, server_name, http versus https) that every request to the
// endpoint meets, so they are logged at warn as well as in the access
// line of the 502.
func (s *Server) logTLSFailure(ep *upstream.Endpoint, err error) {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	if errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &alert) {
		s.log.Warn("proxy: upstream TLS handshake failed", "endpoint", ep.String(), "error", err)
	}
}
