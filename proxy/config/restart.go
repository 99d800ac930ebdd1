package config

import (
	"fmt"
	"strings"
)

// RestartChange is one setting a reload cannot apply to a running
// process: its YAML key and the running and the new value.
type RestartChange struct {
	Key      string
	Old, New string
}

// restartKeys are the settings fixed for the life of the process: the
// listener's address, the limits fasthttp reads on every connection
// without synchronization (its ReadTimeout, ReadBufferSize and
// MaxRequestBodySize are set once on the fasthttp.Server), the log
// format (the process's one logger) and the plugin compilation cache
// (opened once by the plugin host). Each compares effective values
// (defaults applied), so spelling out a default is not a change.
//
// A setting added later that a running process cannot change belongs
// here.
var restartKeys = []struct {
	key   string
	value func(r *Resolved) string
}{
	{"hostname", func(r *Resolved) string { return r.Config.Hostname }},
	{"port", func(r *Resolved) string { return fmt.Sprint(r.Config.Port) }},
	{"client_header_timeout", func(r *Resolved) string { return r.ClientHeaderTimeout.String() }},
	{"max_request_header_size", func(r *Resolved) string { return fmt.Sprint(r.MaxRequestHeaderSize) }},
	{"max_request_body_size", func(r *Resolved) string { return fmt.Sprint(int64(r.Config.MaxRequestBodySize)) }},
	{"log.format", func(r *Resolved) string { return logFormat(r.Config.Log.Format) }},
	{"plugin_cache_dir", func(r *Resolved) string { return r.Config.PluginCacheDir }},
	// The listener's TLS wrapping and its minimum version are set when it
	// starts; the certificates themselves are re-read on every reload.
	{"tls", func(r *Resolved) string { return onOff(r.Config.TLS != nil) }},
	{"tls.min_version", func(r *Resolved) string { return tlsMinVersion(r.Config.TLS) }},
	{"admin.hostname", func(r *Resolved) string { return adminHost(r.Config.Admin) }},
	{"admin.port", func(r *Resolved) string { return fmt.Sprint(r.Config.Admin.Port) }},
	// The plugin host opens its Redis pools once, at start.
	{"redis", func(r *Resolved) string { return fmt.Sprintf("%+v", r.Config.Redis) }},
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func tlsMinVersion(t *TLSConfig) string {
	if t == nil {
		return ""
	}
	if t.MinVersion == "" {
		return "1.2"
	}
	return t.MinVersion
}

func adminHost(a AdminConfig) string {
	if !a.Enabled() || a.Hostname != "" {
		return a.Hostname
	}
	return DefaultAdminHostname
}

func logFormat(f string) string {
	if f == "" {
		return "text"
	}
	return f
}

// RestartChanges lists, in a fixed order, the settings that differ
// between the running configuration and a new one and that only a
// restart can apply. Both must be resolved (Config.Resolve).
func RestartChanges(running, next *Resolved) []RestartChange {
	var out []RestartChange
	for _, k := range restartKeys {
		if a, b := k.value(running), k.value(next); a != b {
			out = append(out, RestartChange{Key: k.key, Old: a, New: b})
		}
	}
	return out
}

// RestartError is the error a reload returns when the new configuration
// changes settings that need a restart. The reload is refused whole: the
// running configuration stays, so the process never runs a mix of the
// file's settings and the old ones (Envoy refuses a listener address
// change the same way; nginx applies the rest and only logs).
type RestartError struct {
	Changes []RestartChange
}

func (e *RestartError) Error() string {
	var b strings.Builder
	b.WriteString("config: reload refused, these settings need a restart: ")
	for i, c := range e.Changes {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (running %q, new %q)", c.Key, c.Old, c.New)
	}
	return b.String()
}
