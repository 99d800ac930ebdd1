package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/testcerts"
)

// TestValidateTLS: certificate, key and CA paths, the upstream client
// certificate's included, are relative to the config file's directory; a
// bad file fails -validate with its name.
func TestValidateTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "edge")
	pair := ca.Issue(t, "api", "api.test")
	dir := t.TempDir()
	for from, to := range map[string]string{pair.CertFile: "api.crt", pair.KeyFile: "api.key", ca.File: "ca.pem"} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write := func(certFile string) string {
		path := filepath.Join(dir, "sluice.yaml")
		yaml := "tls: {cert_file: " + certFile + ", key_file: api.key}\n" +
			"upstreams: [{name: a, endpoints: ['https://engine.test'], tls: {ca_file: ca.pem, cert_file: api.crt, key_file: api.key}}]\n"
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if dir == wd {
		t.Fatal("the test needs a config directory other than the working directory")
	}
	if code, out, errOut := runCLI(t, "-config", write("api.crt"), "-validate"); code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("relative paths: exit %d, %q %q", code, out, errOut)
	}
	code, _, errOut := runCLI(t, "-config", write("ca.pem"), "-validate")
	if code != 2 || !strings.Contains(errOut, "tls") || !strings.Contains(errOut, filepath.Join(dir, "ca.pem")) {
		t.Fatalf("a CA as the certificate: exit %d, stderr %q; want 2 naming tls and the file", code, errOut)
	}
}
