//go:build wasip1

package guest

import "github.com/sluice-proxy/sluice/plugins/sdk"

// name prefixes this package's log lines ("apikey: …"). A module holds one
// plugin, so it is set once, by Register, before the host calls anything.
var name = "plugin"

// Register makes newPlugin the factory of the module's plugin contexts
// (one per configured plugin; the context ID is not needed) and plugin the
// prefix of the log lines this package writes. Call it once, from the
// plugin's init.
func Register(plugin string, newPlugin func() sdk.PluginContext) {
	name = plugin
	sdk.SetPluginContext(func(uint32) sdk.PluginContext { return newPlugin() })
}

// Configure reads the plugin configuration (none when size is 0: parse
// gets nil) and parses it. On failure it logs at critical level — the
// read error, or parse's error as it is, since parsers prefix their own —
// and returns false, which OnPluginStart returns so the host refuses to
// load the plugin.
func Configure[T any](size int, parse func([]byte) (T, error)) (T, bool) {
	var zero T
	var data []byte
	if size > 0 {
		var err error
		data, err = sdk.GetPluginConfiguration()
		if err != nil {
			sdk.LogCriticalf("%s: cannot read the plugin configuration: %v", name, err)
			return zero, false
		}
	}
	v, err := parse(data)
	if err != nil {
		sdk.LogCritical(err.Error())
		return zero, false
	}
	return v, true
}

// PluginName returns the name the host configured this plugin under (the
// plugin_name property), or the name given to Register when the host has
// none. Plugins prefix their shared-data keys with it, so two instances of
// one plugin under different names keep apart.
func PluginName() string {
	if n, err := sdk.GetProperty([]string{"plugin_name"}); err == nil && len(n) > 0 {
		return string(n)
	}
	return name
}
