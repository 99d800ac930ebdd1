package sdk

// VMContext is the per-instance context, registered with SetVMContext from
// the plugin's init function. The host creates one per module instance.
type VMContext interface {
	// OnVMStart is called once, after the instance starts, with the size of
	// the VM configuration (read it with GetVMConfiguration). Returning false
	// fails the start.
	OnVMStart(vmConfigSize int) bool
	// NewPluginContext is called for each plugin (root) context the host
	// creates. Returning nil makes the host's proxy_on_configure fail.
	NewPluginContext(contextID uint32) PluginContext
}

// PluginContext is a configured plugin (Proxy-Wasm root context). It lives
// until the host deletes it, typically when the plugin is unloaded.
type PluginContext interface {
	// OnPluginStart is called with the size of the plugin configuration
	// (read it with GetPluginConfiguration). Returning false rejects the
	// configuration; the host should refuse to load the plugin.
	OnPluginStart(pluginConfigSize int) bool
	// NewHttpContext is called for each HTTP request. Returning nil means the
	// plugin ignores HTTP traffic: every HTTP callback then continues.
	NewHttpContext(contextID uint32) HttpContext
	// OnTick is called every period set with SetTickPeriodMilliSeconds.
	OnTick()
	// OnQueueReady is called when an item is enqueued on a shared queue this
	// plugin registered.
	OnQueueReady(queueID uint32)
	// OnPluginDone is called when the host is about to delete the plugin.
	// Returning false defers deletion until the plugin calls Done.
	OnPluginDone() bool
}

// HttpContext handles one HTTP request/response pair. Its callbacks run in
// stream order; after OnHttpStreamDone the context is dropped.
type HttpContext interface {
	// OnHttpRequestHeaders is called when the request headers arrive.
	OnHttpRequestHeaders(numHeaders int, endOfStream bool) Action
	// OnHttpRequestBody is called for request body data; bodySize is the
	// size of the body buffered so far.
	OnHttpRequestBody(bodySize int, endOfStream bool) Action
	// OnHttpResponseHeaders is called when the response headers arrive.
	OnHttpResponseHeaders(numHeaders int, endOfStream bool) Action
	// OnHttpResponseBody is called for response body data.
	OnHttpResponseBody(bodySize int, endOfStream bool) Action
	// OnHttpStreamDone is called once when the stream ends (proxy_on_log);
	// request and response headers are still readable.
	OnHttpStreamDone()
}

// Optional interfaces. The SDK checks for them with a type assertion, so a
// context implements only what it needs.
type (
	// RequestTrailersHandler is implemented by an HttpContext that wants
	// request trailers; without it they continue.
	RequestTrailersHandler interface {
		OnHttpRequestTrailers(numTrailers int) Action
	}
	// ResponseTrailersHandler is implemented by an HttpContext that wants
	// response trailers; without it they continue.
	ResponseTrailersHandler interface {
		OnHttpResponseTrailers(numTrailers int) Action
	}
	// HttpCallResponseHandler is implemented by a PluginContext that wants
	// responses to HTTP callouts that were dispatched without a callback
	// (DispatchHttpCall with a nil callback).
	HttpCallResponseHandler interface {
		OnHttpCallResponse(calloutID uint32, numHeaders, bodySize, numTrailers int)
	}
	// ForeignFunctionHandler is implemented by a PluginContext that serves
	// host-initiated foreign function calls (proxy_on_foreign_function). The
	// arguments are read with GetBufferBytes(BufferForeignFunctionArguments, …).
	ForeignFunctionHandler interface {
		OnForeignFunction(functionID uint32, argsSize int)
	}
)

// DefaultVMContext is an embeddable VMContext: OnVMStart accepts, and
// NewPluginContext returns a DefaultPluginContext.
type DefaultVMContext struct{}

// OnVMStart returns true.
func (DefaultVMContext) OnVMStart(int) bool { return true }

// NewPluginContext returns a DefaultPluginContext.
func (DefaultVMContext) NewPluginContext(uint32) PluginContext { return &DefaultPluginContext{} }

// DefaultPluginContext is an embeddable PluginContext: it accepts any
// configuration, creates no HTTP contexts and ignores ticks and queues.
type DefaultPluginContext struct{}

// OnPluginStart returns true.
func (DefaultPluginContext) OnPluginStart(int) bool { return true }

// NewHttpContext returns nil (HTTP traffic is not handled).
func (DefaultPluginContext) NewHttpContext(uint32) HttpContext { return nil }

// OnTick does nothing.
func (DefaultPluginContext) OnTick() {}

// OnQueueReady does nothing.
func (DefaultPluginContext) OnQueueReady(uint32) {}

// OnPluginDone returns true.
func (DefaultPluginContext) OnPluginDone() bool { return true }

// DefaultHttpContext is an embeddable HttpContext whose callbacks all
// continue.
type DefaultHttpContext struct{}

// OnHttpRequestHeaders returns ActionContinue.
func (DefaultHttpContext) OnHttpRequestHeaders(int, bool) Action { return ActionContinue }

// OnHttpRequestBody returns ActionContinue.
func (DefaultHttpContext) OnHttpRequestBody(int, bool) Action { return ActionContinue }

// OnHttpResponseHeaders returns ActionContinue.
func (DefaultHttpContext) OnHttpResponseHeaders(int, bool) Action { return ActionContinue }

// OnHttpResponseBody returns ActionContinue.
func (DefaultHttpContext) OnHttpResponseBody(int, bool) Action { return ActionContinue }

// OnHttpStreamDone does nothing.
func (DefaultHttpContext) OnHttpStreamDone() {}

var (
	_ VMContext     = DefaultVMContext{}
	_ PluginContext = DefaultPluginContext{}
	_ HttpContext   = DefaultHttpContext{}
)
