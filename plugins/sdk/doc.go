// Package sdk is a small Proxy-Wasm ABI v0.2.1 guest SDK for standard Go
// plugins built as WASI reactors (this module needs Go >= 1.26.8, as go.mod
// says; the SDK itself needs only //go:wasmexport, Go >= 1.24):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm ./plugins/headers
//
// A plugin is a package main with an empty main function and an init
// function that registers its VM context, or, when the VM context would
// only create plugin contexts, their factory:
//
//	func main() {}
//
//	func init() { sdk.SetVMContext(&vm{}) }
//	// or: func init() { sdk.SetPluginContext(func(uint32) sdk.PluginContext { return &plugin{} }) }
//
// The host calls the module's _initialize export (which runs init), then the
// proxy_on_* callbacks exported by this package. They are dispatched to a
// three-level context tree modelled on Envoy's:
//
//   - one VMContext per module instance (SetVMContext),
//   - one PluginContext per configured plugin (the Proxy-Wasm "root context"),
//   - one HttpContext per HTTP request/response pair.
//
// The host functions (header and body access, logging, properties, local
// replies, shared data and queues, HTTP callouts, metrics, foreign functions)
// are wrapped as plain Go functions that return errors mapped from the
// Proxy-Wasm status codes (ErrNotFound, ErrBadArgument, ErrUnimplemented, …).
//
// # Build constraints
//
// Files that declare //go:wasmexport or //go:wasmimport functions build only
// with GOOS=wasip1, so `go build ./...` and `go vet ./...` stay green on the
// host. The pure-Go parts (map and property-path serialisation, status codes,
// the context dispatcher, the allocation table) build everywhere and are unit
// tested and fuzzed on the host.
//
// # Concurrency and lifetimes
//
// A Wasm instance runs one callback at a time and the host never calls into a
// module concurrently, so the SDK keeps its state in package variables without
// locks. Do not call SDK functions from goroutines started by the plugin: they
// only run while a callback is in progress and the host expects host calls to
// come from the callback itself.
//
// Slices and strings returned by the wrappers are owned by the caller: they are
// ordinary Go memory and stay valid after the callback returns.
package sdk
