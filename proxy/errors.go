package proxy

import (
	"encoding/json"
	"strconv"

	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// errorKind is a class of error the proxy answers itself. Bodies are
// rendered once per server (errorBodies), never per request.
type errorKind uint8

const (
	errOverloaded errorKind = iota
	errNoRoute
	errTooLarge
	errBadGateway
	errTimeout
	errPluginFailure
	errBadRequest
	errPoolSaturated
	errQueueTimeout
	errNoEndpoint
	errModelNotFound
	errHeaderTooLarge
	errURITooLong
	errClientTimeout
	errBadFraming
	errTransferCoding
	errBodyBufferFull
	numErrorKinds
)

type errorSpec struct {
	status  int
	message string
	oaType  string // OpenAI "type"
	oaCode  string // OpenAI "code"
	tgiType string // TGI "error_type"
}

var errorSpecs = [numErrorKinds]errorSpec{
	errOverloaded:    {429, "Model is overloaded: all request slots are in use, retry later", "overloaded_error", "overloaded", "overloaded"},
	errNoRoute:       {404, "No route matches this request", "invalid_request_error", "route_not_found", "not_found"},
	errTooLarge:      {413, "Request body is larger than max_request_body_size", "invalid_request_error", "request_too_large", "validation"},
	errBadGateway:    {502, "Upstream is unreachable or closed the connection", "api_error", "bad_gateway", "bad_gateway"},
	errTimeout:       {504, "Upstream did not answer within the timeout", "timeout_error", "upstream_timeout", "timeout"},
	errPluginFailure: {503, "A plugin failed while handling this request", "api_error", "plugin_failure", "plugin_failure"},
	errBadRequest:    {400, "Malformed request", "invalid_request_error", "bad_request", "validation"},
	// The pool variants name the pool (poolErrorBodies); the model one
	// names the model (writeModelNotFound).
	errPoolSaturated: {429, "All endpoints of the upstream pool are at capacity, retry later", "overloaded_error", "overloaded", "overloaded"},
	// A queue timeout is the server failing to serve in time, not the
	// client sending too much: 503, like TGI's and vLLM's own overload.
	errQueueTimeout:  {503, "No endpoint of the upstream pool became free within queue_timeout, retry later", "overloaded_error", "queue_timeout", "overloaded"},
	errNoEndpoint:    {503, "No endpoint the plugin chose can take the request", "api_error", "no_endpoint", "unavailable"},
	errModelNotFound: {404, "The requested model is not served here", "invalid_request_error", "model_not_found", "not_found"},
	// What clients send wrong at the edge (read.go, accept.go).
	errHeaderTooLarge: {431, "Request head is larger than max_request_header_size", "invalid_request_error", "request_header_too_large", "validation"},
	errURITooLong:     {414, "Request line is larger than max_request_header_size", "invalid_request_error", "uri_too_long", "validation"},
	errClientTimeout:  {408, "Request was not received within client_header_timeout or client_body_timeout", "invalid_request_error", "request_timeout", "validation"},
	errBadFraming:     {400, "Request framing is ambiguous: Content-Length with Transfer-Encoding, or several Content-Length headers", "invalid_request_error", "bad_request", "validation"},
	errTransferCoding: {501, "Transfer-Encoding other than chunked is not supported", "invalid_request_error", "not_implemented", "validation"},
	errBodyBufferFull: {503, "Too many request bodies are being received at once (max_request_body_buffer), retry later", "overloaded_error", "overloaded", "overloaded"},
}

// errorBodies holds the JSON body of each errorKind in the configured
// shape.
type errorBodies [numErrorKinds][]byte

func newErrorBodies(openAI bool) *errorBodies {
	var eb errorBodies
	for k, s := range errorSpecs {
		eb[k] = errorJSON(openAI, s.message, s.oaType, s.oaCode, s.tgiType)
	}
	return &eb
}

type openAIError struct {
	Error openAIErrorBody `json:"error"`
}

type openAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

type tgiError struct {
	Error     string `json:"error"`
	ErrorType string `json:"error_type"`
}

// errorJSON renders an error body: OpenAI's
// {"error":{"message","type","param":null,"code"}} or TGI's
// {"error","error_type"}.
func errorJSON(openAI bool, message, oaType, oaCode, tgiType string) []byte {
	var v any = tgiError{Error: message, ErrorType: tgiType}
	if openAI {
		v = openAIError{Error: openAIErrorBody{Message: message, Type: oaType, Code: oaCode}}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("proxy: cannot render error body: " + err.Error())
	}
	return b
}

// retryAfterSeconds is what 429 and 503 answers advise clients to wait.
const retryAfterSeconds = 1

var (
	strRetryAfter      = []byte("Retry-After")
	strRetryAfterMs    = []byte("retry-after-ms")
	strRetryAfterValue = []byte(strconv.Itoa(retryAfterSeconds))
	strRetryAfterMsVal = []byte(strconv.Itoa(retryAfterSeconds * 1000))
	strApplicationJSON = []byte("application/json")
)

// retryAdvised reports whether kind's answer carries Retry-After.
func retryAdvised(kind errorKind) bool {
	switch kind {
	case errOverloaded, errPoolSaturated, errQueueTimeout, errNoEndpoint, errBodyBufferFull:
		return true
	}
	return false
}

// writeError answers the request with kind's status and JSON body.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, kind errorKind) {
	resp := &ctx.Response
	resp.ResetBody()
	resp.SetStatusCode(errorSpecs[kind].status)
	resp.Header.SetContentTypeBytes(strApplicationJSON)
	if retryAdvised(kind) {
		resp.Header.SetBytesKV(strRetryAfter, strRetryAfterValue)
		resp.Header.SetBytesKV(strRetryAfterMs, strRetryAfterMsVal)
	}
	resp.SetBodyRaw(s.errBodies[kind])
}

// poolErrorBodies are the error bodies that name their pool, rendered
// once per pool.
type poolErrorBodies struct {
	saturated, queueTimeout, noEndpoint []byte
}

func newPoolErrorBodies(openAI bool, name string) poolErrorBodies {
	q := strconv.Quote(name)
	render := func(kind errorKind, msg string) []byte {
		s := errorSpecs[kind]
		return errorJSON(openAI, msg, s.oaType, s.oaCode, s.tgiType)
	}
	return poolErrorBodies{
		saturated: render(errPoolSaturated,
			"All endpoints of upstream pool "+q+" are at capacity (max_batch_size requests each), retry later"),
		queueTimeout: render(errQueueTimeout,
			"No endpoint of upstream pool "+q+" became free within its queue_timeout, retry later"),
		noEndpoint: render(errNoEndpoint,
			"No endpoint of upstream pool "+q+" that the plugin chose can take the request"),
	}
}

// writePoolError answers kind with the body that names pool p.
func (s *Server) writePoolError(ctx *fasthttp.RequestCtx, p *upstream.Pool, kind errorKind) {
	s.writeError(ctx, kind)
	var b []byte
	switch kind {
	case errPoolSaturated:
		b = s.poolErrs[p.Index()].saturated
	case errQueueTimeout:
		b = s.poolErrs[p.Index()].queueTimeout
	case errNoEndpoint:
		b = s.poolErrs[p.Index()].noEndpoint
	}
	if b != nil {
		ctx.Response.SetBodyRaw(b)
	}
}

// writeModelNotFound answers 404 naming the model, in OpenAI's shape
// (code model_not_found, param "model") or TGI's. It allocates; it is an
// error path.
func (s *Server) writeModelNotFound(ctx *fasthttp.RequestCtx, model []byte) {
	s.writeError(ctx, errModelNotFound)
	msg := "The model " + strconv.Quote(string(model)) + " is not served by any upstream of this proxy"
	var v any = tgiError{Error: msg, ErrorType: errorSpecs[errModelNotFound].tgiType}
	if s.cfg.OpenAICompat {
		param := "model"
		v = openAIError{Error: openAIErrorBody{Message: msg, Type: "invalid_request_error", Param: &param, Code: "model_not_found"}}
	}
	b, err := json.Marshal(v)
	if err != nil { // cannot happen: plain strings
		return
	}
	ctx.Response.SetBodyRaw(b)
}
