package config

import (
	"net"
	"strconv"
	"strings"
)

// DefaultAdminHostname is the address the admin listener binds when
// admin.port is set and admin.hostname is not: loopback, so metrics and
// profiles are not published by accident.
const DefaultAdminHostname = "127.0.0.1"

// AdminConfig is the admin listener: a second port serving /metrics (and
// the -pprof profiles) so that the client-facing port does not publish
// upstream addresses, model names and plugin internals. /health and
// /ready answer on both ports. The zero value (no port) means no admin
// listener: /metrics is served on the main port, as without the section.
type AdminConfig struct {
	// Hostname is the address to bind. Default "127.0.0.1" (loopback);
	// set "0.0.0.0" for a scraper on another host (a Kubernetes pod).
	Hostname string `yaml:"hostname"`
	// Port is the admin TCP port, 1–65535, different from port. Default 0:
	// no admin listener.
	Port int `yaml:"port"`
}

// Enabled reports whether an admin listener is configured.
func (a AdminConfig) Enabled() bool { return a.Port != 0 }

// Addr is "hostname:port" of the admin listener, the hostname defaulted.
func (a AdminConfig) Addr() string {
	h := a.Hostname
	if h == "" {
		h = DefaultAdminHostname
	}
	return net.JoinHostPort(h, strconv.Itoa(a.Port))
}

// validateAdmin checks the admin section against the main listener.
func (c *Config) validateAdmin() error {
	a := c.Admin
	if a.Port == 0 {
		if a.Hostname != "" {
			return fieldErr("admin.port", "must be set when admin.hostname is (1-65535)")
		}
		return nil
	}
	if a.Port < 1 || a.Port > 65535 {
		return fieldErr("admin.port", "%d is out of range 1-65535", a.Port)
	}
	if strings.ContainsAny(a.Hostname, " /") {
		return fieldErr("admin.hostname", "%q is not a host name or address", a.Hostname)
	}
	if a.Port == c.Port {
		return fieldErr("admin.port", "%d is the main port; the admin listener needs its own", a.Port)
	}
	return nil
}
