package proxy

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestStoreRequestHeadersKeepsPathWithNonNumericPort checks that a
// filter's ":authority" whose "port" is not a number (Envoy plugins append
// "-canary" to the authority) is forwarded as written with the filter's
// path: fasthttp alone would parse the target with that Host, fail, and
// route and forward "/".
func TestStoreRequestHeadersKeepsPathWithNonNumericPort(t *testing.T) {
	for _, authority := range []string{"127.0.0.1:8080-canary", "web-canary", "api.example.com:8443"} {
		var req fasthttp.Request
		req.SetRequestURI("/before")
		req.Header.SetHost("127.0.0.1:8080")
		var h Headers
		h.AddString(":method", "POST")
		h.AddString(":path", "/v1/chat?x=1")
		h.AddString(":authority", authority)
		h.AddString("x-a", "1")
		storeRequestHeaders(&req, &h)
		if got := string(req.URI().Path()); got != "/v1/chat" {
			t.Errorf("%s: routed path %q, want /v1/chat", authority, got)
		}
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := req.Write(w); err != nil {
			t.Fatalf("%s: write: %v", authority, err)
		}
		_ = w.Flush()
		wire := b.String()
		if want := "POST /v1/chat?x=1 HTTP/1.1\r\n"; len(wire) < len(want) || wire[:len(want)] != want {
			t.Errorf("%s: request line %q, want %q", authority, wire, want)
		}
		if !bytes.Contains(b.Bytes(), []byte("\r\nHost: "+authority+"\r\n")) {
			t.Errorf("%s: Host not forwarded as written:\n%s", authority, wire)
		}
	}
}
