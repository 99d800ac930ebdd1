package proxy

import (
	"encoding/json"
	"strconv"

	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

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
