package sim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxBody is the largest request body accepted: TGI's payload_limit,
// 2,000,000 bytes (vLLM sets none). It bounds what fastjson allocates for
// a hostile body (~80 bytes per JSON value; see RATIONALE.md's
// Dependencies) and still holds a prompt filling the default cache.
const maxBody = 2_000_000

// Handler returns the engine's HTTP API: POST /v1/chat/completions and
// /v1/completions, GET /v1/models, /health and /metrics. It is safe for
// concurrent use and valid until Close (after which it answers 503).
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { e.serveCompletion(w, r, true) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { e.serveCompletion(w, r, false) })
	mux.HandleFunc("GET /v1/models", e.serveModels)
	mux.HandleFunc("GET /health", e.serveHealth)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { e.serveMetrics(w) })
	return mux
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func (e *Engine) serveHealth(w http.ResponseWriter, r *http.Request) {
	if e.isClosed() {
		writeError(w, &apiError{status: 503, message: ErrClosed.Error(), typ: "service_unavailable"})
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (e *Engine) serveModels(w http.ResponseWriter, r *http.Request) {
	c := strconv.FormatInt(e.created, 10)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"object":"list","data":[{"id":`+e.modelJSON+`,"object":"model","created":`+c+
		`,"owned_by":"sluice-sim","root":`+e.modelJSON+`,"max_model_len":`+itoa(e.cfg.MaxModelLen)+`}]}`)
}

// writeError writes an OpenAI error body.
func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(errorJSON(e))
}

func errorJSON(e *apiError) []byte {
	msg, _ := json.Marshal(e.message)
	param := []byte("null")
	if e.param != "" {
		param, _ = json.Marshal(e.param)
	}
	return []byte(`{"error":{"message":` + string(msg) + `,"type":"` + e.typ + `","param":` + string(param) +
		`,"code":` + itoa(e.status) + `}}`)
}

func (e *Engine) serveCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, &apiError{status: 413, message: "the request body is over " + itoa(maxBody) + " bytes", typ: "invalid_request_error"})
			return
		}
		writeError(w, badRequest("", "reading the request body: "+err.Error()))
		return
	}
	p, aerr := parseRequest(body, chat)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if p.model != "" && p.model != e.cfg.Model {
		writeError(w, &apiError{status: 404, message: "The model `" + p.model + "` does not exist.", param: "model", typ: "NotFoundError"})
		return
	}
	s, err := e.submit(request{prompt: tokenize(make([]uint32, 0, numTokens(len(p.prompt))+64), p.prompt),
		maxTokens: p.maxTokens, ignoreEOS: p.ignoreEOS})
	if err != nil {
		var tl errTooLong
		switch {
		case errors.As(err, &tl):
			writeError(w, badRequest("max_tokens", err.Error()))
		case errors.Is(err, ErrClosed):
			writeError(w, &apiError{status: 503, message: err.Error(), typ: "service_unavailable"})
		default:
			writeError(w, badRequest("prompt", err.Error()))
		}
		return
	}
	defer e.cancel(s) // frees the sequence if the client left; no-op once finished
	out := &responder{e: e, s: s, p: &p, id: idPrefix(chat) + strconv.FormatUint(s.id, 10), created: strconv.FormatInt(e.created, 10)}
	if p.stream {
		out.stream(w, r)
	} else {
		out.whole(w, r)
	}
}

func idPrefix(chat bool) string {
	if chat {
		return "chatcmpl-sim-"
	}
	return "cmpl-sim-"
}

// responder writes one request's answer.
type responder struct {
	e       *Engine
	s       *seq
	p       *parsed
	id      string
	created string
}

// wait blocks until s has generated more than have tokens or finished, or
// the client went away (false).
func (o *responder) wait(r *http.Request, have int) (n int, finished bool, err error, ok bool) {
	for {
		n, finished, err = o.e.progress(o.s)
		if n > have || finished {
			return n, finished, err, true
		}
		select {
		case <-o.s.notify:
		case <-r.Context().Done():
			return n, finished, err, false
		}
	}
}

// whole answers a non-streaming request when its sequence finishes.
func (o *responder) whole(w http.ResponseWriter, r *http.Request) {
	n := 0
	for {
		var finished, ok bool
		var err error
		n, finished, err, ok = o.wait(r, n)
		if !ok {
			return
		}
		if err != nil {
			writeError(w, &apiError{status: 503, message: err.Error(), typ: "service_unavailable"})
			return
		}
		if finished {
			break
		}
	}
	var text strings.Builder
	for i := range n {
		text.WriteString(outputWord(o.e.cfg.Seed, o.s.promptHash, i))
	}
	textJSON := `"` + text.String() + `"` // output words need no escaping
	var b strings.Builder
	if o.p.chat {
		b.WriteString(`{"id":"` + o.id + `","object":"chat.completion","created":` + o.created + `,"model":` + o.e.modelJSON +
			`,"choices":[{"index":0,"message":{"role":"assistant","content":` + textJSON + `},"logprobs":null,"finish_reason":"` + o.s.reason + `"}]`)
	} else {
		b.WriteString(`{"id":"` + o.id + `","object":"text_completion","created":` + o.created + `,"model":` + o.e.modelJSON +
			`,"choices":[{"index":0,"text":` + textJSON + `,"logprobs":null,"finish_reason":"` + o.s.reason + `"}]`)
	}
	b.WriteString(`,"usage":` + o.usage(n) + "}")
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, b.String())
}

func (o *responder) usage(n int) string {
	return `{"prompt_tokens":` + itoa(o.s.promptLen) + `,"completion_tokens":` + itoa(n) +
		`,"total_tokens":` + itoa(o.s.promptLen+n) + `}`
}

// stream answers as server-sent events: for chat a first event with the
// assistant role, then one event per token (the last carries
// finish_reason), the usage event if asked for, and "data: [DONE]". An
// engine error after the headers ends the stream with an error event, as
// the OpenAI SDKs expect.
func (o *responder) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	usageNull := ""
	if o.p.includeUsage {
		usageNull = `,"usage":null`
	}
	obj := "text_completion"
	if o.p.chat {
		obj = "chat.completion.chunk"
	}
	head := `data: {"id":"` + o.id + `","object":"` + obj + `","created":` + o.created + `,"model":` + o.e.modelJSON + `,"choices":[`
	buf := make([]byte, 0, 512)
	if o.p.chat {
		buf = append(buf, head+`{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]`+usageNull+"}\n\n"...)
	}
	sent := 0
	for {
		n, finished, err, ok := o.wait(r, sent)
		if !ok {
			return
		}
		for ; sent < n; sent++ {
			word := outputWord(o.e.cfg.Seed, o.s.promptHash, sent)
			reason := "null"
			if finished && err == nil && sent == n-1 {
				reason = `"` + o.s.reason + `"`
			}
			buf = append(buf, head...)
			if o.p.chat {
				buf = append(buf, `{"index":0,"delta":{"content":"`+word+`"},"logprobs":null,"finish_reason":`+reason+`}]`...)
			} else {
				buf = append(buf, `{"index":0,"text":"`+word+`","logprobs":null,"finish_reason":`+reason+`}]`...)
			}
			buf = append(buf, usageNull+"}\n\n"...)
		}
		if err != nil {
			buf = append(buf, "data: "...)
			buf = append(buf, errorJSON(&apiError{status: 503, message: err.Error(), typ: "service_unavailable"})...)
			buf = append(buf, "\n\n"...)
		} else if finished {
			if o.p.includeUsage {
				buf = append(buf, head+`],"usage":`+o.usage(n)+"}\n\n"...)
			}
			buf = append(buf, "data: [DONE]\n\n"...)
		}
		if _, werr := w.Write(buf); werr != nil {
			return
		}
		_ = rc.Flush()
		buf = buf[:0]
		if finished {
			return
		}
	}
}
