package sdk

// BufferRedisCallResponse is the Higress extension's buffer of a Redis
// call's RESP reply, readable in a DispatchRedisCall callback.
const BufferRedisCallResponse BufferType = 9

// registerRedisCallout remembers the callback of a Redis call until its
// reply arrives. Redis and HTTP calls share the host's id space, so they
// share the table.
func (d *dispatcher) registerRedisCallout(calloutID uint32, cb func(status, responseSize int)) {
	d.callouts[calloutID] = func(status, size, _ int) { cb(status, size) }
}

func (d *dispatcher) onRedisCallResponse(pluginID, calloutID, status, responseSize uint32) {
	if cb, ok := d.callouts[calloutID]; ok {
		delete(d.callouts, calloutID)
		cb(int(status), int(responseSize), 0)
		return
	}
	d.logf(LogLevelWarn, "sdk: reply to Redis call %d for plugin context %d has no callback", calloutID, pluginID)
}
