// Package guest is the part of a Go plugin that every plugin writes the
// same way: the start-up prologue (Register, Configure, PluginName), local
// replies that fail closed (Reply) and host counters that may be off
// (Counter). A plugin's main package keeps only its policy.
//
// A plugin registers itself from init:
//
//	func main() {}
//
//	func init() { guest.Register("apikey", func() sdk.PluginContext { return &plugin{} }) }
//
// and reads its configuration in OnPluginStart:
//
//	func (p *plugin) OnPluginStart(size int) bool {
//		pol, ok := guest.Configure(size, parseConfig)
//		if !ok {
//			return false // the host refuses to load the plugin
//		}
//		…
//	}
//
// Everything but this file is built for wasip1 only (it calls the SDK's
// host functions); the plugins' pure logic stays host-testable.
package guest
