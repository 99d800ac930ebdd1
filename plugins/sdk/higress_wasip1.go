//go:build wasip1

package sdk

import "unsafe"

// The Higress extensions to Proxy-Wasm (its proxy-wasm-go-sdk declares
// them; Sluice implements them): Redis calls, the request's upstream
// endpoints, and an endpoint override. A host without them refuses to load
// a module that imports them, so only plugins that call these functions
// import them.

//go:wasmimport env proxy_redis_init
//go:noescape
func proxyRedisInit(cluster unsafe.Pointer, clusterSize uint32, username unsafe.Pointer, usernameSize uint32,
	password unsafe.Pointer, passwordSize uint32, timeoutMs uint32) uint32

//go:wasmimport env proxy_redis_call
//go:noescape
func proxyRedisCall(cluster unsafe.Pointer, clusterSize uint32, query unsafe.Pointer, querySize uint32, retCalloutID *uint32) uint32

//go:wasmimport env proxy_get_upstream_hosts
//go:noescape
func proxyGetUpstreamHosts(retData, retSize *uint32) uint32

//go:wasmimport env proxy_set_upstream_override_host
//go:noescape
func proxySetUpstreamOverrideHost(addr unsafe.Pointer, addrSize uint32) uint32

//go:wasmimport env proxy_inject_encoded_data_to_filter_chain
//go:noescape
func proxyInjectEncodedDataToFilterChain(data unsafe.Pointer, dataSize uint32, endOfStream uint32) uint32

//go:wasmexport proxy_on_redis_call_response
func proxyOnRedisCallResponse(pluginContextID, calloutID, status, responseSize uint32) {
	enterCallback()
	dispatch.onRedisCallResponse(pluginContextID, calloutID, status, responseSize)
}

// RedisInit sets up calls to the Redis server cluster names: a name from
// the host's redis: list, or an Istio-style "outbound|6379||NAME" whose
// NAME is one; on Sluice, "" names the only entry when there is one. timeoutMs bounds each call (0: the host's default; the host
// may lower it). Sluice ignores username and password (its configuration
// holds the credentials); Higress's Envoy uses them. An unknown cluster is
// ErrBadArgument.
func RedisInit(cluster, username, password string, timeoutMs uint32) error {
	return hostError("proxy_redis_init", proxyRedisInit(stringPtr(cluster), uint32(len(cluster)),
		stringPtr(username), uint32(len(username)), stringPtr(password), uint32(len(password)), timeoutMs))
}

// DispatchRedisCall sends one command, RESP-encoded (RedisCommand builds
// it), to cluster. The host answers later: the SDK runs callback with the
// call's status (0: success, the reply is readable with
// GetRedisCallResponse; anything else: Redis could not be reached or did
// not answer in time, and there is no reply) and the reply's size. Resume
// a paused request from the callback with SetEffectiveContext and
// ResumeHttpRequest. A malformed query, a command that changes connection
// state (AUTH, SELECT, MULTI, SUBSCRIBE, …) or an unknown cluster is
// ErrBadArgument, and callback never runs.
func DispatchRedisCall(cluster string, query []byte, callback func(status, responseSize int)) (calloutID uint32, err error) {
	st := proxyRedisCall(stringPtr(cluster), uint32(len(cluster)), bytesPtr(query), uint32(len(query)), &calloutID)
	if err := hostError("proxy_redis_call", st); err != nil {
		return 0, err
	}
	if callback != nil {
		dispatch.registerRedisCallout(calloutID, callback)
	}
	return calloutID, nil
}

// GetRedisCallResponse returns up to maxSize bytes of the RESP reply from
// start. Valid only inside a DispatchRedisCall callback whose status is 0.
func GetRedisCallResponse(start, maxSize int) ([]byte, error) {
	return GetBufferBytes(BufferRedisCallResponse, start, maxSize)
}

// GetUpstreamHosts returns the endpoints of the pool the current request
// goes to, in configuration order: each endpoint's "host:port" and the
// Prometheus text its engine last answered to a scrape ("" when the pool
// has no metrics_path or no scrape succeeded yet). No pool for the request
// is ErrNotFound.
func GetUpstreamHosts() ([][2]string, error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyGetUpstreamHosts(&addr, &size)
	b, err := hostBytes("proxy_get_upstream_hosts", st, mark, addr, size)
	if err != nil {
		return nil, err
	}
	return DeserializeMap(b)
}

// SetUpstreamOverrideHost sends the current request to the endpoint addr
// ("host:port" of an endpoint of its pool), bypassing load balancing.
// Call it in the request phase; an unknown endpoint, or a call after the
// endpoint was chosen, is ErrBadArgument.
func SetUpstreamOverrideHost(addr string) error {
	return hostError("proxy_set_upstream_override_host", proxySetUpstreamOverrideHost(stringPtr(addr), uint32(len(addr))))
}

// InjectEncodedDataToFilterChain is Higress's way to push body data into
// the response stream. Sluice answers ErrUnimplemented: rewrite the body
// with ReplaceHttpResponseBody instead.
func InjectEncodedDataToFilterChain(data []byte, endOfStream bool) error {
	return hostError("proxy_inject_encoded_data_to_filter_chain",
		proxyInjectEncodedDataToFilterChain(bytesPtr(data), uint32(len(data)), boolToU32(endOfStream)))
}

//go:wasmimport env proxy_get_status
//go:noescape
func proxyGetStatus(retCode *uint32, retMessage, retMessageSize *uint32) uint32

// GetStatus returns the status code and message of the call whose
// callback runs: for a Redis call, its status (as the callback got it) and
// what went wrong ("timeout", the connection error); for an HTTP call, the
// HTTP status and reason phrase.
func GetStatus() (code uint32, message string, err error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyGetStatus(&code, &addr, &size)
	b, err := hostBytes("proxy_get_status", st, mark, addr, size)
	return code, string(b), err
}
