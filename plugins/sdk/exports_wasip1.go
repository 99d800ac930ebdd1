//go:build wasip1

package sdk

// Callbacks exported to the host. Each is a thin adapter from the ABI's i32
// parameters to the dispatcher in dispatch.go. The Go toolchain adds the
// reactor's _initialize export, which runs package init functions (and so the
// plugin's SetVMContext) before any of these is called.

func init() {
	dispatch.log = logMessage
}

// proxy_abi_version_0_2_1 advertises the ABI version; it is never called.
//
//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion021() {}

// proxy_on_memory_allocate hands the host a buffer the Go heap keeps alive
// (see allocTable) until the SDK has read what the host wrote into it.
// It returns 0 for sizes above 1 GiB.
//
//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	addr, _ := mem.alloc(size)
	return uint32(addr)
}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(contextID, parentContextID uint32) {
	enterCallback()
	dispatch.onContextCreate(contextID, parentContextID)
}

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(pluginContextID, vmConfigSize uint32) uint32 {
	enterCallback()
	return boolToU32(dispatch.onVMStart(pluginContextID, vmConfigSize))
}

//go:wasmexport proxy_on_configure
func proxyOnConfigure(pluginContextID, pluginConfigSize uint32) uint32 {
	enterCallback()
	return boolToU32(dispatch.onConfigure(pluginContextID, pluginConfigSize))
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(contextID, numHeaders, endOfStream uint32) uint32 {
	enterCallback()
	return uint32(dispatch.onRequestHeaders(contextID, numHeaders, endOfStream != 0))
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(contextID, bodySize, endOfStream uint32) uint32 {
	enterCallback()
	return uint32(dispatch.onRequestBody(contextID, bodySize, endOfStream != 0))
}

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(contextID, numTrailers uint32) uint32 {
	enterCallback()
	return uint32(dispatch.onRequestTrailers(contextID, numTrailers))
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(contextID, numHeaders, endOfStream uint32) uint32 {
	enterCallback()
	return uint32(dispatch.onResponseHeaders(contextID, numHeaders, endOfStream != 0))
}

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(contextID, bodySize, endOfStream uint32) uint32 {
	enterCallback()
	return uint32(dispatch.onResponseBody(contextID, bodySize, endOfStream != 0))
}

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(contextID, numTrailers uint32) uint32 {
	enterCallback()
	return uint32(dispatch.onResponseTrailers(contextID, numTrailers))
}

//go:wasmexport proxy_on_log
func proxyOnLog(contextID uint32) {
	enterCallback()
	dispatch.onLog(contextID)
}

//go:wasmexport proxy_on_done
func proxyOnDone(contextID uint32) uint32 {
	enterCallback()
	return boolToU32(dispatch.onDone(contextID))
}

//go:wasmexport proxy_on_delete
func proxyOnDelete(contextID uint32) {
	enterCallback()
	dispatch.onDelete(contextID)
}

//go:wasmexport proxy_on_tick
func proxyOnTick(pluginContextID uint32) {
	enterCallback()
	dispatch.onTick(pluginContextID)
}

//go:wasmexport proxy_on_http_call_response
func proxyOnHttpCallResponse(pluginContextID, calloutID, numHeaders, bodySize, numTrailers uint32) {
	enterCallback()
	dispatch.onHttpCallResponse(pluginContextID, calloutID, numHeaders, bodySize, numTrailers)
}

//go:wasmexport proxy_on_queue_ready
func proxyOnQueueReady(pluginContextID, queueID uint32) {
	enterCallback()
	dispatch.onQueueReady(pluginContextID, queueID)
}

//go:wasmexport proxy_on_foreign_function
func proxyOnForeignFunction(pluginContextID, functionID, argsSize uint32) {
	enterCallback()
	dispatch.onForeignFunction(pluginContextID, functionID, argsSize)
}

func boolToU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
