package wasm

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestGuestEnvironmentHoldsExactlyConfiguredVariables checks that a
// guest's WASI environment is what environment_variables lists: the host
// variables named in host_env_keys that are set (an unset one is left
// out), plus key_values, and nothing of Sluice's own environment besides.
func TestGuestEnvironmentHoldsExactlyConfiguredVariables(t *testing.T) {
	t.Setenv("SLUICE_TEST_FROM_HOST", "host value")
	t.Setenv("SLUICE_TEST_NOT_LISTED", "secret")
	s := newRawSetup(t, func(pc *proxy.PluginConfig) {
		pc.EnvironmentVariables = proxy.PluginEnvironment{
			HostEnvKeys: []string{"SLUICE_TEST_FROM_HOST", "SLUICE_TEST_UNSET_VARIABLE"},
			KeyValues:   map[string]string{"MODE": "canary", "EMPTY": ""},
		}
	})
	r := s.e.do(t, "GET", "/", "", "x-raw-env", "SLUICE_TEST_FROM_HOST,MODE,SLUICE_TEST_NOT_LISTED,PATH")
	if got, want := r.header.Get("x-raw-environ"), "EMPTY=;MODE=canary;SLUICE_TEST_FROM_HOST=host value"; got != want {
		t.Errorf("guest environ %q, want %q", got, want)
	}
	if got, want := r.header.Get("x-raw-env"), "SLUICE_TEST_FROM_HOST=host value;MODE=canary;SLUICE_TEST_NOT_LISTED=;PATH="; got != want {
		t.Errorf("guest getenv %q, want %q", got, want)
	}
}

func TestGuestEnvironmentIsEmptyByDefault(t *testing.T) {
	t.Setenv("SLUICE_TEST_FROM_HOST", "host value")
	s := newRawSetup(t)
	r := s.e.do(t, "GET", "/", "", "x-raw-env", "SLUICE_TEST_FROM_HOST")
	if got := r.header.Get("x-raw-environ"); got != "" {
		t.Errorf("guest environ %q, want it empty", got)
	}
}

// TestLoadRejectsBadEnvironment checks that Load itself (not only
// Config.Validate) refuses names WASI cannot carry, naming the field.
func TestLoadRejectsBadEnvironment(t *testing.T) {
	h := newTestHost(t)
	for _, env := range []proxy.PluginEnvironment{
		{KeyValues: map[string]string{"A=B": "x"}},
		{KeyValues: map[string]string{"": "x"}},
		{HostEnvKeys: []string{"A\x00"}},
		{KeyValues: map[string]string{"A": "x\x00y"}},
		{HostEnvKeys: []string{"A"}, KeyValues: map[string]string{"A": "x"}},
	} {
		pc := fixtureConfig(t, "ok")
		pc.EnvironmentVariables = env
		p, err := h.Load(context.Background(), pc)
		if err == nil {
			p.Close()
			t.Errorf("%+v: loaded", env)
			continue
		}
		if !strings.Contains(err.Error(), "environment_variables") || !strings.Contains(err.Error(), `plugin "ok"`) {
			t.Errorf("%+v: error %q does not name the plugin and the field", env, err)
		}
	}
}
