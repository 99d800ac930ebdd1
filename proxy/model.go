package proxy

import (
	"bytes"

	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// Model-aware routing. With OpenAICompat, the "model" member of a /v1/…
// request's JSON body is read after the plugins' request phase (so a
// plugin may rewrite it), by walking the body's top-level members without
// decoding the rest and without allocating (jsonspan.go); its escapes are
// decoded by fastjson. Duplicate "model" members resolve to the last, as
// Python's json module and Go's encoding/json do, so Sluice routes on the
// name the engine will read. A body that is not a JSON object, or whose
// top level is malformed, has no model: the request goes on without one.

var strV1Prefix = []byte("/v1/")

// requestModel is what findModel learnt about the request's model. It
// lives in the pooled requestState, and so does its parser.
type requestModel struct {
	name       []byte // decoded; valid while the request lives
	has        bool
	start, end int // the model string token's bounds in rs.body

	// dec decodes escaped keys and names. It only ever parses one string
	// token, never the body: jsonspan.go says why.
	dec fastjson.Parser
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
	start, end, ok := scanModel(&m.dec, rs.body)
	if !ok {
		return
	}
	name, ok := decodeString(&m.dec, rs.body[start:end])
	if !ok {
		return
	}
	m.name = append(m.name[:0], name...)
	m.has, m.start, m.end = true, start, end
}

// scanModel returns the bounds of the string token that is the value of
// body's last top-level "model" member; false when body is not a JSON
// object, is malformed, or its last "model" is not a string. dec decodes
// escaped keys.
func scanModel(dec *fastjson.Parser, body []byte) (start, end int, ok bool) {
	o, isObj := openMembers(body)
	if !isObj {
		return 0, 0, false
	}
	for o.next() {
		if !o.keyIs(dec, "model") {
			continue
		}
		ok = body[o.valStart] == '"'
		start, end = o.valStart, o.valEnd
	}
	if !o.ok() {
		return 0, 0, false
	}
	return start, end, ok
}

// aliasJSON maps each alias of a pool to the JSON string of the name sent
// upstream, quoted once at start-up.
func aliasJSON(aliases map[string]string) map[string][]byte {
	m := make(map[string][]byte, len(aliases))
	for alias, target := range aliases {
		m[alias] = appendJSONString(nil, target)
	}
	return m
}

// applyAlias rewrites the body's model when the pool maps the client's
// name to another, by splicing the new name's JSON string over the old
// token: every other byte of the body is kept, field order, unknown fields,
// numbers and escapes included. (fastjson's Object.Set and MarshalTo would
// re-serialize the whole document instead, dropping its spacing and
// re-quoting any string it decoded with strconv.AppendQuote, whose \x00
// is not JSON; and Set replaces the first of duplicate "model" members
// where the engine reads the last.) fasthttp writes Content-Length from
// the new body.
func (rs *requestState) applyAlias(req *fasthttp.Request, p *upstream.Pool) {
	m := &rs.model
	aliases := rs.srv.aliasJSON[p.Index()]
	if !m.has || len(aliases) == 0 {
		return
	}
	quoted, ok := aliases[string(m.name)]
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
