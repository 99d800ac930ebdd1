package testsync

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// NewRequest returns a request for url with body (none when "") and
// headers, which alternate name and value; a "host" header (any case)
// sets req.Host, as net/http ignores it in req.Header. A malformed method
// or url fails tb. It lives here, beside the other helpers every package's
// tests share, because package proxy's tests cannot import
// internal/plugintest.
func NewRequest(tb testing.TB, method, url, body string, headers ...string) *http.Request {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}
