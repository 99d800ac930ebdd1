package main

import (
	"bytes"
	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
	"strconv"
	"strings"
)

// maxChoices bounds the "n" multiplier of the up-front charge.
const maxChoices = 128

// requestCost is the number of LLM tokens charged when a request with this
// body is admitted: max_completion_tokens, else max_tokens, else the
// default estimate — times n (the number of choices) — plus, when
// configured, a prompt estimate from the body's length. A body that is not
// a JSON object is charged the default estimate (plus the prompt
// estimate). The result is at most maxLimit.
func requestCost(body []byte, s *settings) int64 {
	est := s.defaultEstimate
	if ms, err := jsonscan.Object(body, "max_completion_tokens", "max_tokens", "n"); err == nil {
		if v, ok := jsonscan.Int(ms[0].Raw(body)); ok && v > 0 {
			est = v
		} else if v, ok := jsonscan.Int(ms[1].Raw(body)); ok && v > 0 {
			est = v
		}
		if n, ok := jsonscan.Int(ms[2].Raw(body)); ok && n > 1 {
			est *= min(n, maxChoices)
		}
	}
	if s.promptBytes > 0 {
		est += (int64(len(body)) + s.promptBytes - 1) / s.promptBytes
	}
	return min(est, maxLimit)
}

// usageTokens reads the token count from the "usage" member of a JSON
// object (an OpenAI completion, or one SSE chunk): total_tokens, else
// prompt_tokens + completion_tokens. ok is false when there is no usage
// object (absent, null, or not an object) or it has no counts.
func usageTokens(doc []byte) (int64, bool) {
	ms, err := jsonscan.Object(doc, "usage")
	if err != nil {
		return 0, false
	}
	raw := ms[0].Raw(doc)
	if len(raw) == 0 || raw[0] != '{' {
		return 0, false
	}
	um, err := jsonscan.Object(raw, "total_tokens", "prompt_tokens", "completion_tokens")
	if err != nil {
		return 0, false
	}
	if t, ok := jsonscan.Int(um[0].Raw(raw)); ok && t >= 0 {
		return t, true
	}
	p, okP := jsonscan.Int(um[1].Raw(raw))
	c, okC := jsonscan.Int(um[2].Raw(raw))
	if (!okP && !okC) || p < 0 || c < 0 {
		return 0, false
	}
	return p + c, true
}

// usageFromHeaders reads TGI's x-prompt-tokens and x-generated-tokens
// response headers; ok is false unless at least one is a count.
func usageFromHeaders(prompt, generated string) (int64, bool) {
	p, errP := strconv.ParseInt(strings.TrimSpace(prompt), 10, 64)
	g, errG := strconv.ParseInt(strings.TrimSpace(generated), 10, 64)
	if errP != nil {
		p = 0
	}
	if errG != nil {
		g = 0
	}
	if (errP != nil && errG != nil) || p < 0 || g < 0 || p > maxLimit || g > maxLimit {
		return 0, false
	}
	return p + g, true
}

// Limits of the response scanner.
const (
	maxSSELine  = 1 << 20 // an event line longer than this is skipped
	maxJSONBody = 1 << 20 // a chunked JSON body longer than this is not scanned
)

// usageScanner finds the usage of a response as its body passes, without
// holding the body back: an event stream (sse) is scanned line by line,
// keeping only an incomplete last line between chunks; a JSON body that
// arrives in one piece is scanned in place, one that arrives in chunks is
// collected up to maxJSONBody. The last usage seen wins. Not safe for
// concurrent use (one per request).
type usageScanner struct {
	sse    bool
	buf    []byte // SSE: the incomplete last line; JSON: the body so far
	skip   bool   // SSE: dropping the rest of an over-long line
	gaveUp bool   // JSON: the body was too long
	tokens int64
	found  bool
}

// feed scans one chunk of the body; eos marks the last one.
func (u *usageScanner) feed(chunk []byte, eos bool) {
	if u.sse {
		u.feedSSE(chunk, eos)
		return
	}
	if u.gaveUp {
		return
	}
	if eos && len(u.buf) == 0 {
		u.scanJSON(chunk)
		return
	}
	if len(u.buf)+len(chunk) > maxJSONBody {
		u.gaveUp, u.buf = true, nil
		return
	}
	u.buf = append(u.buf, chunk...)
	if eos {
		u.scanJSON(u.buf)
		u.buf = nil
	}
}

func (u *usageScanner) scanJSON(doc []byte) {
	if t, ok := usageTokens(doc); ok {
		u.tokens, u.found = t, true
	}
}

func (u *usageScanner) feedSSE(chunk []byte, eos bool) {
	for len(chunk) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			switch {
			case u.skip:
			case len(u.buf)+len(chunk) > maxSSELine:
				u.skip, u.buf = true, u.buf[:0]
			default:
				u.buf = append(u.buf, chunk...)
			}
			break
		}
		line := chunk[:i]
		chunk = chunk[i+1:]
		switch {
		case u.skip:
			u.skip = false
		case len(u.buf) > 0:
			u.buf = append(u.buf, line...)
			u.sseLine(u.buf)
			u.buf = u.buf[:0]
		default:
			u.sseLine(line)
		}
	}
	if eos {
		if len(u.buf) > 0 && !u.skip {
			u.sseLine(u.buf)
		}
		u.buf, u.skip = nil, false
	}
}

var (
	dataPrefix = []byte("data:")
	usageKey   = []byte(`"usage"`)
)

// sseLine scans one event-stream line: a "data:" line whose JSON has a
// usage object.
func (u *usageScanner) sseLine(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if !bytes.HasPrefix(line, dataPrefix) {
		return
	}
	payload := bytes.TrimSpace(line[len(dataPrefix):])
	if !bytes.Contains(payload, usageKey) {
		return
	}
	u.scanJSON(payload)
}

// isEventStream reports whether a content-type is text/event-stream.
func isEventStream(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}
