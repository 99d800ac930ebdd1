package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Model-aware routing. With OpenAICompat, the "model" member of a /v1/…
// request's JSON body is read after the plugins' request phase (so a
// plugin may rewrite it), without decoding the rest of the body and
// without allocating (jsonscan.go). Duplicate "model" members resolve to
// the last, as Python's json module and Go's encoding/json do, so Sluice
// routes on the name the engine will read.

var strV1Prefix = []byte("/v1/")

// requestModel is what findModel learnt about the request's model.
type requestModel struct {
	name       []byte // decoded; valid while the request lives
	has        bool
	start, end int // the model string token's bounds in rs.body
}

func (m *requestModel) reset() {
	m.name = m.name[:0]
	m.has = false
	m.start, m.end = 0, 0
}

// findModel reads the model of an OpenAI request: a /v1/ path and a JSON
// object body with a string "model" member.
func (rs *requestState) findModel(req *fasthttp.Request) {
	m := &rs.model
	if !rs.srv.cfg.OpenAICompat || len(rs.body) == 0 || !bytes.HasPrefix(req.URI().Path(), strV1Prefix) {
		return
	}
	start, end, ok := scanModel(rs.body)
	if !ok {
		return
	}
	raw := rs.body[start+1 : end-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		m.name = appendUnescaped(m.name[:0], raw)
	} else {
		m.name = append(m.name[:0], raw...)
	}
	m.has, m.start, m.end = true, start, end
}

// scanModel returns the bounds of the string token that is the value of
// body's last top-level "model" member; false when body is not a JSON
// object, is malformed, or its last "model" is not a string.
func scanModel(body []byte) (start, end int, ok bool) {
	o, isObj := openObject(body)
	if !isObj {
		return 0, 0, false
	}
	for o.next() {
		if !o.keyIs("model") {
			continue
		}
		ok = o.val[0] == '"'
		start, end = o.valStart, o.valStart+len(o.val)
	}
	if !o.ok() {
		return 0, 0, false
	}
	return start, end, ok
}

// applyAlias rewrites the body's model when the pool maps the client's
// name to another. fasthttp writes Content-Length from the new body.
func (rs *requestState) applyAlias(req *fasthttp.Request, p *pool) {
	m := &rs.model
	if !m.has || len(p.aliases) == 0 {
		return
	}
	quoted, ok := p.aliases[string(m.name)]
	if !ok {
		return
	}
	nb := append(rs.bodyAlt[:0], rs.body[:m.start]...)
	nb = append(nb, quoted...)
	nb = append(nb, rs.body[m.end:]...)
	rs.bodyAlt, rs.body = rs.body, nb
	m.end = m.start + len(quoted)
	req.SetBodyRaw(rs.body)
}
