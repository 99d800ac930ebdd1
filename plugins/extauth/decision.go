package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// verdict is what to do with a request.
type verdict struct {
	allow bool
	// failed marks the verdict of a failed call (never cached).
	failed bool
	// status, headers and body of the refusal (allow false).
	status uint32
	// headers: when allowing, the copy_headers values to set on the
	// request; when refusing, the reply's headers.
	headers [][2]string
	body    []byte
}

// forwarded returns the values of the configured headers in req (every
// value, in configuration order, then request order).
func forwarded(names []string, req [][2]string) [][2]string {
	var out [][2]string
	for _, n := range names {
		for _, kv := range req {
			if strings.EqualFold(kv[0], n) {
				out = append(out, [2]string{n, kv[1]})
			}
		}
	}
	return out
}

// cacheKey is the shared-data key of a decision: a SHA-256 over the
// forwarded headers (names and values, length-prefixed so no two header
// sets collide), under the plugin's prefix.
func cacheKey(prefix string, fwd [][2]string) string {
	h := sha256.New()
	var n [4]byte
	for _, kv := range fwd {
		for _, s := range kv {
			binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	return "extauth/" + prefix + "/" + hex.EncodeToString(h.Sum(nil))
}

// calloutHeaders are the headers of the call to the service: the
// configured method, path and authority, the forwarded headers, and the
// original request's method, URI and id (Traefik's ForwardAuth names).
func calloutHeaders(s *settings, fwd [][2]string, method, uri, requestID string) [][2]string {
	h := make([][2]string, 0, len(fwd)+6)
	h = append(h, [2]string{":method", s.method}, [2]string{":path", s.path}, [2]string{":authority", s.authority})
	h = append(h, fwd...)
	h = append(h, [2]string{"x-forwarded-method", method}, [2]string{"x-forwarded-uri", uri})
	if requestID != "" {
		h = append(h, [2]string{"x-request-id", requestID})
	}
	return h
}

// decide turns the service's reply into a verdict. ok is false when the
// reply is a failure (1xx, 5xx, or no status): the failure mode applies and
// nothing is cached. A 2xx admits, copying copy_headers; a 3xx or 4xx
// refuses with the service's status, body (up to maxAuthBody) and the
// headers in replyHeaders; an empty refusal body is replaced by an
// OpenAI-style error.
func decide(s *settings, status int, headers [][2]string, body []byte) (v verdict, ok bool) {
	switch {
	case status >= 200 && status <= 299:
		v.allow = true
		v.headers = forwarded(s.copy, headers)
		return v, true
	case status >= 300 && status <= 499:
		if len(body) > maxAuthBody {
			return verdict{}, false
		}
		v.status = uint32(status)
		v.headers = forwarded(replyHeaders, headers)
		if len(body) == 0 {
			v.body = openai.ErrorBody("The request was refused by the authorization service (status "+strconv.Itoa(status)+").",
				"invalid_request_error", "", "unauthorized")
			v.headers = append(withoutHeader(v.headers, "content-type"), [2]string{"content-type", "application/json"})
		} else {
			v.body = append([]byte(nil), body...)
		}
		return v, true
	}
	return verdict{}, false
}

func withoutHeader(h [][2]string, name string) [][2]string {
	out := h[:0]
	for _, kv := range h {
		if kv[0] != name {
			out = append(out, kv)
		}
	}
	return out
}

// failure is the verdict when the service cannot decide.
func failure(s *settings) verdict {
	if s.failureModeAllow {
		return verdict{allow: true, failed: true}
	}
	return verdict{failed: true, status: 503, headers: [][2]string{{"content-type", "application/json"}},
		body: openai.ErrorBody("The authorization service is unavailable.", "server_error", "", "auth_unavailable")}
}

// statusOf returns the :status of a callout reply, 0 when absent or bad.
func statusOf(headers [][2]string) int {
	for _, kv := range headers {
		if kv[0] == ":status" {
			n, err := strconv.Atoi(kv[1])
			if err != nil || n < 100 || n > 999 {
				return 0
			}
			return n
		}
	}
	return 0
}

// recordVersion tags encoded cache records.
const recordVersion = 1

// encodeRecord serialises a verdict and its expiry (Unix ns) for shared
// data: version, expiry, allow, status, the headers (Proxy-Wasm map
// encoding, length-prefixed) and the body.
func encodeRecord(v verdict, expires int64) []byte {
	h := sdk.SerializeMap(v.headers)
	out := make([]byte, 0, 18+len(h)+len(v.body))
	out = append(out, recordVersion)
	out = binary.LittleEndian.AppendUint64(out, uint64(expires))
	allow := byte(0)
	if v.allow {
		allow = 1
	}
	out = append(out, allow)
	out = binary.LittleEndian.AppendUint32(out, v.status)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(h)))
	out = append(out, h...)
	return append(out, v.body...)
}

// decodeRecord parses what encodeRecord produced; ok is false for
// anything else.
func decodeRecord(data []byte) (v verdict, expires int64, ok bool) {
	if len(data) < 18 || data[0] != recordVersion || data[9] > 1 {
		return verdict{}, 0, false
	}
	expires = int64(binary.LittleEndian.Uint64(data[1:]))
	v.allow = data[9] == 1
	v.status = binary.LittleEndian.Uint32(data[10:])
	hl := binary.LittleEndian.Uint32(data[14:])
	if uint64(hl) > uint64(len(data)-18) {
		return verdict{}, 0, false
	}
	if hl > 0 {
		h, err := sdk.DeserializeMap(data[18 : 18+hl])
		if err != nil {
			return verdict{}, 0, false
		}
		v.headers = h
	}
	if rest := data[18+hl:]; len(rest) > 0 {
		v.body = append([]byte(nil), rest...)
	}
	if !v.allow && (v.status < 300 || v.status > 599) {
		return verdict{}, 0, false
	}
	return v, expires, true
}
