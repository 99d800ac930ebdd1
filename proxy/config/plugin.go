package config

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// PluginEnvironment is a plugin's WASI environment, as Envoy's
// vm_config.environment_variables (envoy.extensions.wasm.v3.
// EnvironmentVariables). The guest sees exactly these variables and no
// others; the zero value gives it an empty environment. The host reads
// HostEnvKeys once, when the plugin loads (a reload reads them again).
type PluginEnvironment struct {
	// HostEnvKeys names variables of Sluice's own environment to copy;
	// one that is not set is left out, as in Envoy.
	HostEnvKeys []string `yaml:"host_env_keys"`
	// KeyValues sets variables to the given values.
	KeyValues map[string]string `yaml:"key_values"`
}

// Validate checks the variable names (non-empty, without '=' or NUL),
// the values (without NUL) and that no name is given twice, as Envoy
// does. The returned *Error's Field is relative to the plugin
// ("environment_variables.key_values").
func (e PluginEnvironment) Validate() error {
	const f = "environment_variables"
	seen := make(map[string]bool, len(e.HostEnvKeys))
	for i, k := range e.HostEnvKeys {
		kf := f + ".host_env_keys[" + strconv.Itoa(i) + "]"
		if err := checkEnvName(kf, k); err != nil {
			return err
		}
		if seen[k] {
			return fieldErr(kf, "%q is listed twice", k)
		}
		seen[k] = true
	}
	keys := make([]string, 0, len(e.KeyValues))
	for k := range e.KeyValues {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same key first every time
	for _, k := range keys {
		kf := f + ".key_values"
		if err := checkEnvName(kf, k); err != nil {
			return err
		}
		if seen[k] {
			return fieldErr(kf, "%q is also in host_env_keys: a variable may come from one place only", k)
		}
		if strings.IndexByte(e.KeyValues[k], 0) >= 0 {
			return fieldErr(kf, "the value of %q holds a NUL byte", k)
		}
	}
	return nil
}

func checkEnvName(field, k string) error {
	switch {
	case k == "":
		return fieldErr(field, "an environment variable name must not be empty")
	case strings.ContainsAny(k, "=\x00"):
		return fieldErr(field, "environment variable name %q holds '=' or a NUL byte", k)
	}
	return nil
}

// PluginLogLimit rate-limits what one plugin logs: proxy_log messages and
// the lines its WASI stdout and stderr get, together, across all its
// instances (a token bucket). Lines over the limit are dropped and
// counted (sluice_plugin_log_lines_dropped_total{plugin}); a summary of
// the drops is logged at most every 10 s. Messages below the configured
// log level cost no token.
type PluginLogLimit struct {
	// LinesPerSecond is the sustained rate. Default
	// DefaultPluginLogLinesPerSecond (100); a negative value turns the
	// limit off.
	LinesPerSecond float64 `yaml:"lines_per_second"`
	// Burst is how many lines may come at once after a quiet spell.
	// Default DefaultPluginLogBurst (200).
	Burst int `yaml:"burst"`
}

// Plugin log limit defaults.
const (
	DefaultPluginLogLinesPerSecond = 100
	DefaultPluginLogBurst          = 200
)

// Validate checks the burst (not negative) and the rate (a number).
// Fields are relative to the plugin ("log_limit.burst").
func (l PluginLogLimit) Validate() error {
	if math.IsNaN(l.LinesPerSecond) || math.IsInf(l.LinesPerSecond, 0) {
		return fieldErr("log_limit.lines_per_second", "must be a number, got %v", l.LinesPerSecond)
	}
	if l.Burst < 0 {
		return fieldErr("log_limit.burst", "must not be negative, got %d", l.Burst)
	}
	return nil
}
