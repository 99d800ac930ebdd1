package sdk

import "fmt"

// dispatcher routes the proxy_on_* callbacks to the registered contexts. It
// holds no Wasm-specific code so it is unit tested on the host; the wasip1
// exports are one-line calls into it.
//
// Not safe for concurrent use: a Wasm instance runs one callback at a time.
type dispatcher struct {
	vm      VMContext
	plugins map[uint32]PluginContext
	// last is the plugin context plugin() found last (lastID's): most
	// instances have one, and each request's create looks it up.
	lastID   uint32
	last     PluginContext
	streams  streamTable
	spare    []*stream // deleted streams' records, reused (maxSpareStreams)
	callouts map[uint32]func(numHeaders, bodySize, numTrailers int)
	// log reports SDK-level problems (unknown context IDs, a missing
	// VMContext). The wasip1 build sends them to proxy_log.
	log func(level LogLevel, msg string)
}

type stream struct {
	ctx      HttpContext
	pluginID uint32
	done     bool // OnHttpStreamDone was called
}

func newDispatcher() *dispatcher {
	return &dispatcher{
		plugins:  make(map[uint32]PluginContext),
		callouts: make(map[uint32]func(int, int, int)),
		log:      func(LogLevel, string) {},
	}
}

// dispatch is the instance's dispatcher.
var dispatch = newDispatcher()

// SetVMContext registers the plugin's VMContext. Call it from init (the host
// runs init through the module's _initialize export; main is never called).
// A later call replaces the context for contexts created afterwards. A nil
// ctx is a programmer error and panics.
func SetVMContext(ctx VMContext) {
	if ctx == nil {
		panic("sdk: SetVMContext called with a nil VMContext")
	}
	dispatch.vm = ctx
}

func (d *dispatcher) logf(level LogLevel, format string, args ...any) {
	d.log(level, fmt.Sprintf(format, args...))
}

func (d *dispatcher) onContextCreate(id, parentID uint32) {
	if parentID == 0 {
		if d.vm == nil {
			d.logf(LogLevelCritical, "sdk: plugin context %d created but no VMContext is registered; call sdk.SetVMContext from init()", id)
			return
		}
		pc := d.vm.NewPluginContext(id)
		if pc == nil {
			d.logf(LogLevelError, "sdk: NewPluginContext(%d) returned nil", id)
			return
		}
		d.plugins[id] = pc
		if d.lastID == id {
			d.last = nil
		}
		return
	}
	pc, ok := d.plugin(parentID)
	if !ok {
		d.logf(LogLevelError, "sdk: HTTP context %d created under unknown plugin context %d", id, parentID)
		return
	}
	hc := pc.NewHttpContext(id)
	if hc == nil {
		return // the plugin does not handle HTTP traffic
	}
	var s *stream
	if n := len(d.spare); n > 0 {
		s, d.spare = d.spare[n-1], d.spare[:n-1]
	} else {
		s = new(stream)
	}
	*s = stream{ctx: hc, pluginID: parentID}
	d.streams.put(id, s)
}

// maxSpareStreams bounds the records onDelete keeps for reuse: an
// allocation costs a Go guest about half a microsecond, and an instance
// rarely has more streams open at once.
const maxSpareStreams = 64

func (d *dispatcher) onVMStart(pluginID uint32, vmConfigSize uint32) bool {
	if d.vm == nil {
		d.logf(LogLevelCritical, "sdk: VM start for plugin context %d but no VMContext is registered; call sdk.SetVMContext from init()", pluginID)
		return false
	}
	return d.vm.OnVMStart(int(vmConfigSize))
}

func (d *dispatcher) onConfigure(pluginID uint32, pluginConfigSize uint32) bool {
	pc, ok := d.plugin(pluginID)
	if !ok {
		d.logf(LogLevelError, "sdk: configure for unknown plugin context %d", pluginID)
		return false
	}
	return pc.OnPluginStart(int(pluginConfigSize))
}

// toStream calls f on stream id's context with n and endOfStream, and
// continues when id is no open stream (the host may call back after the
// guest dropped it). f is a method expression, so nothing allocates.
func (d *dispatcher) toStream(id uint32, f func(HttpContext, int, bool) Action, n uint32, endOfStream bool) Action {
	if s := d.streams.get(id); s != nil {
		return f(s.ctx, int(n), endOfStream)
	}
	return ActionContinue
}

func (d *dispatcher) onRequestHeaders(id, numHeaders uint32, endOfStream bool) Action {
	return d.toStream(id, HttpContext.OnHttpRequestHeaders, numHeaders, endOfStream)
}

func (d *dispatcher) onRequestBody(id, bodySize uint32, endOfStream bool) Action {
	return d.toStream(id, HttpContext.OnHttpRequestBody, bodySize, endOfStream)
}

func (d *dispatcher) onRequestTrailers(id, numTrailers uint32) Action {
	return d.toStream(id, requestTrailers, numTrailers, true)
}

func (d *dispatcher) onResponseHeaders(id, numHeaders uint32, endOfStream bool) Action {
	return d.toStream(id, HttpContext.OnHttpResponseHeaders, numHeaders, endOfStream)
}

func (d *dispatcher) onResponseBody(id, bodySize uint32, endOfStream bool) Action {
	return d.toStream(id, HttpContext.OnHttpResponseBody, bodySize, endOfStream)
}

func (d *dispatcher) onResponseTrailers(id, numTrailers uint32) Action {
	return d.toStream(id, responseTrailers, numTrailers, true)
}

// requestTrailers and responseTrailers call the optional trailer handlers;
// a context without one continues.
func requestTrailers(c HttpContext, n int, _ bool) Action {
	if h, ok := c.(RequestTrailersHandler); ok {
		return h.OnHttpRequestTrailers(n)
	}
	return ActionContinue
}

func responseTrailers(c HttpContext, n int, _ bool) Action {
	if h, ok := c.(ResponseTrailersHandler); ok {
		return h.OnHttpResponseTrailers(n)
	}
	return ActionContinue
}

// onLog ends an HTTP context's stream (OnHttpStreamDone). Plugin contexts
// have no log callback.
func (d *dispatcher) onLog(id uint32) {
	if s := d.streams.get(id); s != nil && !s.done {
		s.done = true
		s.ctx.OnHttpStreamDone()
	}
}

func (d *dispatcher) onDone(id uint32) bool {
	if pc, ok := d.plugin(id); ok {
		return pc.OnPluginDone()
	}
	return true
}

// onDelete forgets a context. An HTTP context whose proxy_on_log never came
// still gets OnHttpStreamDone, so plugins can rely on it being called once.
func (d *dispatcher) onDelete(id uint32) {
	if s := d.streams.del(id); s != nil {
		if !s.done {
			s.done = true
			s.ctx.OnHttpStreamDone()
		}
		if len(d.spare) < maxSpareStreams {
			*s = stream{}
			d.spare = append(d.spare, s)
		}
		return
	}
	delete(d.plugins, id)
	if d.last != nil && d.lastID == id {
		d.last = nil
	}
}

// plugin returns the plugin context of id.
func (d *dispatcher) plugin(id uint32) (PluginContext, bool) {
	if d.last != nil && d.lastID == id {
		return d.last, true
	}
	pc, ok := d.plugins[id]
	if ok {
		d.lastID, d.last = id, pc
	}
	return pc, ok
}

func (d *dispatcher) onTick(pluginID uint32) {
	if pc, ok := d.plugin(pluginID); ok {
		pc.OnTick()
		return
	}
	d.logf(LogLevelError, "sdk: tick for unknown plugin context %d", pluginID)
}

func (d *dispatcher) onQueueReady(pluginID, queueID uint32) {
	if pc, ok := d.plugin(pluginID); ok {
		pc.OnQueueReady(queueID)
		return
	}
	d.logf(LogLevelError, "sdk: queue %d ready for unknown plugin context %d", queueID, pluginID)
}

// registerCallout remembers the callback of a dispatched HTTP call until its
// response arrives.
func (d *dispatcher) registerCallout(calloutID uint32, cb func(numHeaders, bodySize, numTrailers int)) {
	d.callouts[calloutID] = cb
}

func (d *dispatcher) onHttpCallResponse(pluginID, calloutID, numHeaders, bodySize, numTrailers uint32) {
	if cb, ok := d.callouts[calloutID]; ok {
		delete(d.callouts, calloutID)
		cb(int(numHeaders), int(bodySize), int(numTrailers))
		return
	}
	if pc, ok := d.plugin(pluginID); ok {
		if h, ok := pc.(HttpCallResponseHandler); ok {
			h.OnHttpCallResponse(calloutID, int(numHeaders), int(bodySize), int(numTrailers))
			return
		}
	}
	d.logf(LogLevelWarn, "sdk: response to HTTP call %d for plugin context %d has no callback and no HttpCallResponseHandler", calloutID, pluginID)
}

func (d *dispatcher) onForeignFunction(pluginID, functionID, argsSize uint32) {
	if pc, ok := d.plugin(pluginID); ok {
		if h, ok := pc.(ForeignFunctionHandler); ok {
			h.OnForeignFunction(functionID, int(argsSize))
			return
		}
	}
	d.logf(LogLevelWarn, "sdk: foreign function %d called on plugin context %d, which has no ForeignFunctionHandler", functionID, pluginID)
}
