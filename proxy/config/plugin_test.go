package config

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigPluginEnvironmentAndLogLimit(t *testing.T) {
	yaml := `
upstreams: [{name: a, endpoints: ["http://127.0.0.1:1"]}]
plugins:
  - name: p
    path: p.wasm
    environment_variables:
      host_env_keys: [HOME, REGION]
      key_values: {MODE: canary}
    log_limit: {lines_per_second: 5, burst: 10}
`
	cfg, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Plugins[0]
	if strings.Join(p.EnvironmentVariables.HostEnvKeys, ",") != "HOME,REGION" || p.EnvironmentVariables.KeyValues["MODE"] != "canary" {
		t.Errorf("environment_variables = %+v", p.EnvironmentVariables)
	}
	if p.LogLimit.LinesPerSecond != 5 || p.LogLimit.Burst != 10 {
		t.Errorf("log_limit = %+v", p.LogLimit)
	}

	bad := []struct {
		mod   func(*PluginConfig)
		field string
	}{
		{func(p *PluginConfig) { p.EnvironmentVariables.KeyValues = map[string]string{"A=B": "1"} }, "plugins[0].environment_variables.key_values"},
		{func(p *PluginConfig) { p.EnvironmentVariables.KeyValues = map[string]string{"": "1"} }, "plugins[0].environment_variables.key_values"},
		{func(p *PluginConfig) { p.EnvironmentVariables.HostEnvKeys = []string{"OK", ""} }, "plugins[0].environment_variables.host_env_keys[1]"},
		{func(p *PluginConfig) { p.EnvironmentVariables.HostEnvKeys = []string{"X=1"} }, "plugins[0].environment_variables.host_env_keys[0]"},
		{func(p *PluginConfig) { p.EnvironmentVariables.HostEnvKeys = []string{"A", "A"} }, "plugins[0].environment_variables.host_env_keys[1]"},
		{func(p *PluginConfig) {
			p.EnvironmentVariables = PluginEnvironment{HostEnvKeys: []string{"A"}, KeyValues: map[string]string{"A": "1"}}
		}, "plugins[0].environment_variables.key_values"},
		{func(p *PluginConfig) { p.LogLimit.Burst = -1 }, "plugins[0].log_limit.burst"},
	}
	for i, tc := range bad {
		c, err := Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		c.Plugins[0].EnvironmentVariables = PluginEnvironment{}
		tc.mod(&c.Plugins[0])
		var ce *Error
		if err := c.Validate(); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("case %d: %v, want an error naming %s", i, err, tc.field)
		}
	}
}
