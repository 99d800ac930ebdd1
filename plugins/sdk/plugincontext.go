package sdk

// SetPluginContext registers newPlugin as the factory of the module's
// plugin contexts, for the common plugin whose VM context does nothing
// else: it is SetVMContext with a VMContext whose OnVMStart accepts and
// whose NewPluginContext returns newPlugin(contextID). Call it from init,
// as SetVMContext (the tetratelabs proxy-wasm-go-sdk names its shortcut
// the same). A later call, to either, replaces it for contexts created
// afterwards. A nil newPlugin is a programmer error and panics.
func SetPluginContext(newPlugin func(contextID uint32) PluginContext) {
	if newPlugin == nil {
		panic("sdk: SetPluginContext called with a nil function")
	}
	SetVMContext(pluginFactory{newPlugin: newPlugin})
}

// pluginFactory is the VMContext SetPluginContext registers.
type pluginFactory struct {
	DefaultVMContext
	newPlugin func(uint32) PluginContext
}

func (f pluginFactory) NewPluginContext(id uint32) PluginContext { return f.newPlugin(id) }

var _ VMContext = pluginFactory{}
