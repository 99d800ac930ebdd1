package main

import (
	"path/filepath"

	"github.com/sluice-proxy/sluice/proxy"
)

// resolveTLSPaths makes the relative paths of certificate, key and CA
// files relative to the config file's directory, as resolvePluginPaths
// does for plugins.
//
// Certificates are re-read without a restart by the server's
// CertStore.Reload (proxy.Server.Certificates), which the SIGHUP reload
// calls.
func resolveTLSPaths(cfg *proxy.Config, configPath string) {
	if configPath == "" {
		return
	}
	dir := filepath.Dir(configPath)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if t := cfg.TLS; t != nil {
		c := *t
		c.Certificates = append([]proxy.CertificateConfig(nil), t.Certificates...)
		rel(&c.CertFile)
		rel(&c.KeyFile)
		for i := range c.Certificates {
			rel(&c.Certificates[i].CertFile)
			rel(&c.Certificates[i].KeyFile)
		}
		cfg.TLS = &c
	}
	for i := range cfg.Upstreams {
		if t := cfg.Upstreams[i].TLS; t != nil {
			c := *t
			rel(&c.CAFile)
			rel(&c.CertFile) // the client certificate (mTLS)
			rel(&c.KeyFile)
			cfg.Upstreams[i].TLS = &c
		}
	}
}
