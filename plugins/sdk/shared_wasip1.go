//go:build wasip1

package sdk

// GetSharedData returns the value stored under key in the host's shared
// key-value store (shared by every instance of every plugin in the VM) and
// its compare-and-swap token for SetSharedData. A missing key is an error
// matching ErrNotFound; cas is then the host's creation token: on Sluice
// a SetSharedData with it succeeds only while the key is still missing
// (so of two instances creating the key, one gets ErrCasMismatch and
// retries on the other's value); on hosts without it (Envoy) it is 0, an
// unconditional set.
func GetSharedData(key string) (value []byte, cas uint32, err error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyGetSharedData(stringPtr(key), uint32(len(key)), &addr, &size, &cas)
	value, err = hostBytes("proxy_get_shared_data", st, mark, addr, size)
	switch {
	case st == uint32(StatusNotFound):
		return nil, cas, err
	case err != nil:
		return nil, 0, err
	}
	return value, cas, nil
}

// SetSharedData stores value under key. A non-zero cas must equal the token
// GetSharedData returned, or the call fails with ErrCasMismatch; cas 0
// writes unconditionally.
func SetSharedData(key string, value []byte, cas uint32) error {
	return hostError("proxy_set_shared_data", proxySetSharedData(stringPtr(key), uint32(len(key)),
		bytesPtr(value), uint32(len(value)), cas))
}

// RegisterSharedQueue creates (or opens) the shared queue name owned by the
// calling plugin context, which receives OnQueueReady for it.
func RegisterSharedQueue(name string) (queueID uint32, err error) {
	err = hostError("proxy_register_shared_queue", proxyRegisterSharedQueue(stringPtr(name), uint32(len(name)), &queueID))
	return queueID, err
}

// ResolveSharedQueue looks up an existing queue registered by the VM vmID.
func ResolveSharedQueue(vmID, name string) (queueID uint32, err error) {
	err = hostError("proxy_resolve_shared_queue", proxyResolveSharedQueue(stringPtr(vmID), uint32(len(vmID)),
		stringPtr(name), uint32(len(name)), &queueID))
	return queueID, err
}

// EnqueueSharedQueue appends data to the queue.
func EnqueueSharedQueue(queueID uint32, data []byte) error {
	return hostError("proxy_enqueue_shared_queue", proxyEnqueueSharedQueue(queueID, bytesPtr(data), uint32(len(data))))
}

// DequeueSharedQueue removes and returns the item at the front of the
// queue; an empty queue is an error matching ErrEmpty.
func DequeueSharedQueue(queueID uint32) ([]byte, error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyDequeueSharedQueue(queueID, &addr, &size)
	return hostBytes("proxy_dequeue_shared_queue", st, mark, addr, size)
}

// DispatchHttpCall sends an HTTP request to the upstream pool cluster.
// headers must include ":method", ":path" and ":authority". When the
// response arrives (or after timeoutMs) the host calls back the plugin
// context, and the SDK runs callback with the response's header count, body
// size and trailer count; numHeaders 0 means the call failed. Inside the
// callback read the response with GetHttpCallResponseHeaders and
// GetHttpCallResponseBody, and resume a paused request with
// SetEffectiveContext(httpContextID) then ResumeHttpRequest. A nil callback
// routes the response to the plugin context's HttpCallResponseHandler.
func DispatchHttpCall(cluster string, headers [][2]string, body []byte, trailers [][2]string,
	timeoutMs uint32, callback func(numHeaders, bodySize, numTrailers int)) (calloutID uint32, err error) {
	h := SerializeMap(headers)
	var t []byte
	if len(trailers) > 0 {
		t = SerializeMap(trailers)
	}
	st := proxyHttpCall(stringPtr(cluster), uint32(len(cluster)), bytesPtr(h), uint32(len(h)),
		bytesPtr(body), uint32(len(body)), bytesPtr(t), uint32(len(t)), timeoutMs, &calloutID)
	if err := hostError("proxy_http_call", st); err != nil {
		return 0, err
	}
	if callback != nil {
		dispatch.registerCallout(calloutID, callback)
	}
	return calloutID, nil
}

// GetHttpCallResponseHeaders returns the callout response's headers. Valid
// only inside a DispatchHttpCall callback.
func GetHttpCallResponseHeaders() ([][2]string, error) { return getMap(MapHttpCallResponseHeaders) }

// GetHttpCallResponseTrailers returns the callout response's trailers.
func GetHttpCallResponseTrailers() ([][2]string, error) { return getMap(MapHttpCallResponseTrailers) }

// GetHttpCallResponseBody returns up to maxSize bytes of the callout
// response's body from start. Valid only inside a DispatchHttpCall callback.
func GetHttpCallResponseBody(start, maxSize int) ([]byte, error) {
	return GetBufferBytes(BufferHttpCallResponseBody, start, maxSize)
}

// CallForeignFunction calls the host function registered under name with
// args and returns its result (possibly empty).
func CallForeignFunction(name string, args []byte) ([]byte, error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyCallForeignFunction(stringPtr(name), uint32(len(name)), bytesPtr(args), uint32(len(args)), &addr, &size)
	return hostBytes("proxy_call_foreign_function", st, mark, addr, size)
}
