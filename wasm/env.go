package wasm

import (
	"os"
	"slices"

	"github.com/sluice-proxy/sluice/proxy"
)

// guestEnv returns a plugin's WASI environment, sorted by name: the
// variables of Sluice's environment named in HostEnvKeys that are set
// (read now, at load), and KeyValues. It fails when e does not validate
// (proxy.PluginEnvironment.Validate).
func guestEnv(e proxy.PluginEnvironment) ([][2]string, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	env := make([][2]string, 0, len(e.HostEnvKeys)+len(e.KeyValues))
	for _, k := range e.HostEnvKeys {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, [2]string{k, v})
		}
	}
	for k, v := range e.KeyValues {
		env = append(env, [2]string{k, v})
	}
	slices.SortFunc(env, func(a, b [2]string) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	return env, nil
}
