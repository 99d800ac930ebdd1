package proxytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// api is the error shape a route answers in.
type api int

const (
	apiPlain  api = iota // text/plain
	apiOpenAI            // {"error":{"message","type","param","code"}}
	apiTGI               // {"error","error_type"}
)

const (
	pathChat        = "/v1/chat/completions"
	pathCompletions = "/v1/completions"
	pathModels      = "/v1/models"
	pathGenerate    = "/generate"
	pathGenStream   = "/generate_stream"
)

func apiFor(path string) api {
	switch path {
	case pathChat, pathCompletions, pathModels:
		return apiOpenAI
	case pathGenerate, pathGenStream:
		return apiTGI
	}
	return apiPlain
}

// exchange is one request on a route other than /health and /metrics. It
// lives for one handler call and is used by that goroutine only.
type exchange struct {
	s         *Server
	w         http.ResponseWriter
	r         *http.Request
	opts      *Options // snapshot taken when the request arrived
	api       api
	body      []byte
	abandoned bool
}

func (x *exchange) serve() {
	body, err := io.ReadAll(http.MaxBytesReader(x.w, x.r.Body, x.opts.MaxBodyBytes))
	rec := &RecordedRequest{
		Method:   x.r.Method,
		Path:     x.r.URL.Path,
		RawQuery: x.r.URL.RawQuery,
		Host:     x.r.Host,
		Header:   x.r.Header.Clone(),
	}
	if err == nil && len(body) > 0 {
		rec.Body = body
	}
	x.s.last.Store(rec)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			x.fail(http.StatusRequestEntityTooLarge, "",
				fmt.Sprintf("proxytest: request body is over %d bytes (Options.MaxBodyBytes)", tooBig.Limit))
			return
		}
		x.abandon() // the client went away while sending the body
		return
	}
	x.body = body
	if !x.wait(x.opts.HeaderDelay) {
		return
	}
	switch x.opts.Fail {
	case Fail500:
		x.fail(http.StatusInternalServerError, "", "proxytest: injected failure (Fail500)")
		return
	case FailResetBeforeHeaders:
		resetConn(x.w, false)
		return
	case FailHang:
		select {
		case <-x.r.Context().Done():
			x.abandon()
		case <-x.s.done:
		}
		return
	}
	x.route()
}

// route answers by path as the API the server imitates there does, or
// with the request line for any other path.
func (x *exchange) route() {
	r, ok := routes[x.r.URL.Path]
	if !ok {
		x.reply("text/plain; charset=utf-8", []byte("proxytest: "+x.r.Method+" "+x.r.URL.RequestURI()+"\n"), 0)
		return
	}
	if x.allow(r.methods...) {
		r.serve(x)
	}
}

// routes are the paths the server imitates an API on: the methods each
// allows (others get 405) and how it answers.
var routes = map[string]struct {
	methods []string
	serve   func(*exchange)
}{
	pathChat:        {[]string{http.MethodPost}, func(x *exchange) { x.openAI(true) }},
	pathCompletions: {[]string{http.MethodPost}, func(x *exchange) { x.openAI(false) }},
	pathModels:      {[]string{http.MethodGet, http.MethodHead}, (*exchange).models},
	pathGenerate:    {[]string{http.MethodPost}, func(x *exchange) { x.tgi(false) }},
	pathGenStream:   {[]string{http.MethodPost}, func(x *exchange) { x.tgi(true) }},
}

// allow answers 405 and returns false unless the request uses one of methods.
func (x *exchange) allow(methods ...string) bool {
	for _, m := range methods {
		if x.r.Method == m {
			return true
		}
	}
	allow := strings.Join(methods, ", ")
	x.w.Header().Set("Allow", allow)
	x.fail(http.StatusMethodNotAllowed, "",
		fmt.Sprintf("proxytest: method %s not allowed on %s (allowed: %s)", x.r.Method, x.r.URL.Path, allow))
	return false
}

// abandon counts the request as cancelled, once, unless the server is
// closing (then the server, not the client, ended it).
func (x *exchange) abandon() {
	if x.abandoned {
		return
	}
	x.abandoned = true
	select {
	case <-x.s.done:
	default:
		x.s.cancelled.Add(1)
	}
}

// wait sleeps for d. It returns false, and the handler must stop, when the
// client went away (counted by Cancelled) or the server is closing.
func (x *exchange) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-x.r.Context().Done():
		x.abandon()
		return false
	case <-x.s.done:
		return false
	}
}

// fail answers status with msg in the route's error shape; param names the
// offending request field for OpenAI errors ("" for none).
func (x *exchange) fail(status int, param, msg string) {
	var body []byte
	switch x.api {
	case apiOpenAI:
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "server_error"
		}
		var p *string
		if param != "" {
			p = &param
		}
		body = mustJSON(openAIError{Error: openAIErrorBody{Message: msg, Type: typ, Param: p}})
	case apiTGI:
		typ := "validation"
		if status >= 500 {
			typ = "incomplete_generation"
		}
		body = mustJSON(tgiError{Error: msg, ErrorType: typ})
	default:
		body = []byte(msg + "\n")
	}
	h := x.w.Header()
	if x.api == apiPlain {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.w.WriteHeader(status)
	if _, err := x.w.Write(body); err != nil {
		x.abandon()
	}
}

// reply answers 200 with body after the generation time of tokens tokens.
// Under FailResetMidStream the connection is reset after the headers and
// the first half of the body.
func (x *exchange) reply(contentType string, body []byte, tokens int) {
	if !x.wait(generationTime(tokens, x.opts.TokenDelay)) {
		return
	}
	h := x.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.w.WriteHeader(http.StatusOK)
	if x.opts.Fail == FailResetMidStream {
		_, _ = x.w.Write(body[:len(body)/2])
		resetConn(x.w, true)
		return
	}
	if _, err := x.w.Write(body); err != nil {
		x.abandon()
	}
}

// generationTime is tokens × delay, saturating instead of overflowing.
func generationTime(tokens int, delay time.Duration) time.Duration {
	if tokens <= 0 || delay <= 0 {
		return 0
	}
	if delay > time.Duration(math.MaxInt64)/time.Duration(tokens) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(tokens) * delay
}

// stream answers 200 with a server-sent event stream: event(i) for each of
// n tokens, each after Options.TokenDelay, then the tail events. Every event
// is flushed as it is written. Under FailResetMidStream the connection is
// reset after min(FailAfterTokens, n) token events.
func (x *exchange) stream(n int, event func(i int) []byte, tail ...[]byte) {
	rc := http.NewResponseController(x.w)
	h := x.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	x.w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		x.abandon()
		return
	}
	resetAt := -1
	if x.opts.Fail == FailResetMidStream {
		resetAt = min(x.opts.FailAfterTokens, n)
	}
	for i := range n {
		if i == resetAt {
			resetConn(x.w, true)
			return
		}
		if !x.wait(x.opts.TokenDelay) || !x.send(rc, event(i)) {
			return
		}
	}
	if resetAt == n {
		resetConn(x.w, true)
		return
	}
	for _, e := range tail {
		if !x.send(rc, e) {
			return
		}
	}
}

// send writes one "data: ...\n\n" event and flushes it.
func (x *exchange) send(rc *http.ResponseController, data []byte) bool {
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := x.w.Write(buf); err != nil {
		x.abandon()
		return false
	}
	if err := rc.Flush(); err != nil {
		x.abandon()
		return false
	}
	return true
}

// tokenText is the text of token i.
func tokenText(i int) string { return "tok" + strconv.Itoa(i) + " " }

// completionText is the text of n tokens.
func completionText(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(tokenText(i))
	}
	return b.String()
}

// mustJSON marshals v, which is always one of this package's reply types;
// a failure is a bug in this package.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("proxytest: marshal %T: %v", v, err))
	}
	return b
}
