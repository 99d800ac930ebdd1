package config

import "testing"

// TestAdminConfig: admin parses from YAML, defaults its hostname to
// loopback, is off without a port, and Validate names its bad fields.
func TestAdminConfig(t *testing.T) {
	c, err := Parse([]byte("admin: {port: 9090}\nupstreams: [{name: a, endpoints: ['http://127.0.0.1:9']}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || !c.Admin.Enabled() || c.Admin.Addr() != "127.0.0.1:9090" {
		t.Fatalf("admin %+v: enabled %v, addr %s, err %v", c.Admin, c.Admin.Enabled(), c.Admin.Addr(), err)
	}
	if (AdminConfig{}).Enabled() || New().Admin.Enabled() {
		t.Fatal("admin listener on by default")
	}
	if got := (AdminConfig{Hostname: "0.0.0.0", Port: 1}).Addr(); got != "0.0.0.0:1" {
		t.Fatalf("Addr() = %s", got)
	}
	ok := func() *Config { return New().WithUpstream("a", "http://127.0.0.1:9") }
	checkRejects(t, ok, []rejectCase{
		{"hostname without port", func(c *Config) { c.Admin.Hostname = "127.0.0.1" }, "admin.port"},
		{"port out of range", func(c *Config) { c.Admin.Port = 70000 }, "admin.port"},
		{"negative port", func(c *Config) { c.Admin.Port = -1 }, "admin.port"},
		{"the main port", func(c *Config) { c.Admin.Port = c.Port }, "admin.port"},
		{"bad hostname", func(c *Config) { c.Admin = AdminConfig{Hostname: "a b", Port: 9090} }, "admin.hostname"},
	})
}
