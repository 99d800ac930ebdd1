//go:build wasip1

package sdk

// maxBufferSize is the "whole buffer" size used for reads, replacement and
// appends, following the convention existing Proxy-Wasm SDKs use with Envoy:
// read (0, max), replace (start 0, size max), append (start max, size 0),
// prepend (start 0, size 0). Hosts clamp it to the buffer's length.
const maxBufferSize = 0x7FFFFFFF

// GetBufferBytes returns up to maxSize bytes of the buffer bt starting at
// start. Which buffers are readable depends on the callback (see the
// BufferType constants). The result is a fresh slice owned by the caller.
func GetBufferBytes(bt BufferType, start, maxSize int) ([]byte, error) {
	s, err := u32Arg("start", start)
	if err != nil {
		return nil, err
	}
	m, err := u32Arg("maxSize", maxSize)
	if err != nil {
		return nil, err
	}
	return getBuffer(bt, s, m)
}

// SetBufferBytes replaces size bytes of buffer bt at start with data.
// start 0 and size 0 prepend; a start at or past the end appends.
func SetBufferBytes(bt BufferType, start, size int, data []byte) error {
	s, err := u32Arg("start", start)
	if err != nil {
		return err
	}
	n, err := u32Arg("size", size)
	if err != nil {
		return err
	}
	return setBuffer(bt, s, n, data)
}

func getBuffer(bt BufferType, start, maxSize uint32) ([]byte, error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyGetBufferBytes(uint32(bt), start, maxSize, &addr, &size)
	return hostBytes("proxy_get_buffer_bytes", st, mark, addr, size)
}

func setBuffer(bt BufferType, start, size uint32, data []byte) error {
	return hostError("proxy_set_buffer_bytes",
		proxySetBufferBytes(uint32(bt), start, size, bytesPtr(data), uint32(len(data))))
}

// GetHttpRequestBody returns up to maxSize bytes of the buffered request
// body from start. Valid in HttpContext.OnHttpRequestBody.
func GetHttpRequestBody(start, maxSize int) ([]byte, error) {
	return GetBufferBytes(BufferHttpRequestBody, start, maxSize)
}

// ReplaceHttpRequestBody replaces the whole buffered request body. Remove
// or fix content-length in OnHttpRequestHeaders when the size changes.
func ReplaceHttpRequestBody(body []byte) error {
	return setBuffer(BufferHttpRequestBody, 0, maxBufferSize, body)
}

// AppendHttpRequestBody appends data to the buffered request body.
func AppendHttpRequestBody(data []byte) error {
	return setBuffer(BufferHttpRequestBody, maxBufferSize, 0, data)
}

// PrependHttpRequestBody inserts data before the buffered request body.
func PrependHttpRequestBody(data []byte) error {
	return setBuffer(BufferHttpRequestBody, 0, 0, data)
}

// GetHttpResponseBody returns up to maxSize bytes of the buffered response
// body from start. Valid in HttpContext.OnHttpResponseBody.
func GetHttpResponseBody(start, maxSize int) ([]byte, error) {
	return GetBufferBytes(BufferHttpResponseBody, start, maxSize)
}

// ReplaceHttpResponseBody replaces the whole buffered response body.
func ReplaceHttpResponseBody(body []byte) error {
	return setBuffer(BufferHttpResponseBody, 0, maxBufferSize, body)
}

// AppendHttpResponseBody appends data to the buffered response body.
func AppendHttpResponseBody(data []byte) error {
	return setBuffer(BufferHttpResponseBody, maxBufferSize, 0, data)
}

// PrependHttpResponseBody inserts data before the buffered response body.
func PrependHttpResponseBody(data []byte) error {
	return setBuffer(BufferHttpResponseBody, 0, 0, data)
}

func getMap(mt MapType) ([][2]string, error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyGetHeaderMapPairs(uint32(mt), &addr, &size)
	b, err := hostBytes("proxy_get_header_map_pairs", st, mark, addr, size)
	if err != nil {
		return nil, err
	}
	pairs, err := DeserializeMap(b) // copies
	mem.recycle(b)
	return pairs, err
}

func setMap(mt MapType, pairs [][2]string) error {
	b := SerializeMap(pairs)
	return hostError("proxy_set_header_map_pairs", proxySetHeaderMapPairs(uint32(mt), bytesPtr(b), uint32(len(b))))
}

func getMapValue(mt MapType, key string) (string, error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyGetHeaderMapValue(uint32(mt), stringPtr(key), uint32(len(key)), &addr, &size)
	b, err := hostBytes("proxy_get_header_map_value", st, mark, addr, size)
	if err != nil {
		return "", err
	}
	v := string(b)
	mem.recycle(b)
	return v, nil
}

func addMapValue(mt MapType, key, value string) error {
	return hostError("proxy_add_header_map_value", proxyAddHeaderMapValue(uint32(mt),
		stringPtr(key), uint32(len(key)), stringPtr(value), uint32(len(value))))
}

func replaceMapValue(mt MapType, key, value string) error {
	return hostError("proxy_replace_header_map_value", proxyReplaceHeaderMapValue(uint32(mt),
		stringPtr(key), uint32(len(key)), stringPtr(value), uint32(len(value))))
}

func removeMapValue(mt MapType, key string) error {
	return hostError("proxy_remove_header_map_value",
		proxyRemoveHeaderMapValue(uint32(mt), stringPtr(key), uint32(len(key))))
}

// GetHttpRequestHeader returns the value of request header name (for
// pseudo-headers: ":path", ":method", ":authority", ":scheme"). A missing
// header is an error matching ErrNotFound.
func GetHttpRequestHeader(name string) (string, error) {
	return getMapValue(MapHttpRequestHeaders, name)
}

// GetHttpRequestHeaders returns all request headers in host order,
// pseudo-headers included.
func GetHttpRequestHeaders() ([][2]string, error) { return getMap(MapHttpRequestHeaders) }

// SetHttpRequestHeader sets request header name to value, replacing any
// existing values.
func SetHttpRequestHeader(name, value string) error {
	return replaceMapValue(MapHttpRequestHeaders, name, value)
}

// AddHttpRequestHeader adds a value to request header name, keeping
// existing values.
func AddHttpRequestHeader(name, value string) error {
	return addMapValue(MapHttpRequestHeaders, name, value)
}

// RemoveHttpRequestHeader removes every value of request header name; a
// missing header is not an error.
func RemoveHttpRequestHeader(name string) error {
	return removeMapValue(MapHttpRequestHeaders, name)
}

// ReplaceHttpRequestHeaders replaces all request headers with headers.
func ReplaceHttpRequestHeaders(headers [][2]string) error {
	return setMap(MapHttpRequestHeaders, headers)
}

// GetHttpRequestTrailers returns all request trailers.
func GetHttpRequestTrailers() ([][2]string, error) { return getMap(MapHttpRequestTrailers) }

// GetHttpResponseHeader returns the value of response header name (":status"
// for the status code). A missing header is an error matching ErrNotFound.
func GetHttpResponseHeader(name string) (string, error) {
	return getMapValue(MapHttpResponseHeaders, name)
}

// GetHttpResponseHeaders returns all response headers in host order.
func GetHttpResponseHeaders() ([][2]string, error) { return getMap(MapHttpResponseHeaders) }

// SetHttpResponseHeader sets response header name to value, replacing any
// existing values.
func SetHttpResponseHeader(name, value string) error {
	return replaceMapValue(MapHttpResponseHeaders, name, value)
}

// AddHttpResponseHeader adds a value to response header name.
func AddHttpResponseHeader(name, value string) error {
	return addMapValue(MapHttpResponseHeaders, name, value)
}

// RemoveHttpResponseHeader removes every value of response header name.
func RemoveHttpResponseHeader(name string) error {
	return removeMapValue(MapHttpResponseHeaders, name)
}

// ReplaceHttpResponseHeaders replaces all response headers with headers.
func ReplaceHttpResponseHeaders(headers [][2]string) error {
	return setMap(MapHttpResponseHeaders, headers)
}

// GetHttpResponseTrailers returns all response trailers.
func GetHttpResponseTrailers() ([][2]string, error) { return getMap(MapHttpResponseTrailers) }

// SendHttpResponse answers the request locally with status, headers and
// body instead of forwarding it (or instead of the upstream's response, from
// the response-headers callback). grpcStatus is -1 for a plain HTTP reply.
// The callback that calls it should return ActionPause.
func SendHttpResponse(status uint32, headers [][2]string, body []byte, grpcStatus int32) error {
	h := SerializeMap(headers)
	return hostError("proxy_send_local_response", proxySendLocalResponse(status, nil, 0,
		bytesPtr(body), uint32(len(body)), bytesPtr(h), uint32(len(h)), uint32(grpcStatus)))
}

// ResumeHttpRequest resumes a request paused by an earlier ActionPause.
func ResumeHttpRequest() error {
	return hostError("proxy_continue_stream", proxyContinueStream(uint32(StreamHttpRequest)))
}

// ResumeHttpResponse resumes a response paused by an earlier ActionPause.
func ResumeHttpResponse() error {
	return hostError("proxy_continue_stream", proxyContinueStream(uint32(StreamHttpResponse)))
}

// CloseStream closes or resets the stream st of the current context.
func CloseStream(st StreamType) error {
	return hostError("proxy_close_stream", proxyCloseStream(uint32(st)))
}

// pathScratch holds the serialized path of the property call in progress
// (a Wasm instance makes one host call at a time), so that reading or
// setting a property allocates nothing in the guest.
var pathScratch []byte

// GetProperty returns the host property at path, e.g.
// []string{"request", "path"} or []string{"plugin_name"}.
func GetProperty(path []string) ([]byte, error) {
	p, err := appendPropertyPath(pathScratch[:0], path)
	pathScratch = p
	if err != nil {
		return nil, err
	}
	return GetSerializedProperty(p)
}

// GetSerializedProperty is GetProperty with the path as
// SerializePropertyPath returns it: a plugin that reads a property on
// every request serializes its path once.
func GetSerializedProperty(path []byte) ([]byte, error) {
	var addr, size uint32
	mark := mem.mark()
	st := proxyGetProperty(bytesPtr(path), uint32(len(path)), &addr, &size)
	return hostBytes("proxy_get_property", st, mark, addr, size)
}

// SetProperty sets the host property at path to value.
func SetProperty(path []string, value []byte) error {
	p, err := appendPropertyPath(pathScratch[:0], path)
	pathScratch = p
	if err != nil {
		return err
	}
	return SetSerializedProperty(p, value)
}

// SetSerializedProperty is SetProperty with the path as
// SerializePropertyPath returns it.
func SetSerializedProperty(path, value []byte) error {
	return hostError("proxy_set_property", proxySetProperty(bytesPtr(path), uint32(len(path)), bytesPtr(value), uint32(len(value))))
}
