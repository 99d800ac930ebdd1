package testsync

import (
	"io"
	"testing"
)

func TestNewRequest(t *testing.T) {
	req := NewRequest(t, "GET", "http://a.test/p?q=1", "")
	if req.Method != "GET" || req.URL.RequestURI() != "/p?q=1" || req.Host != "a.test" || req.Body != nil || len(req.Header) != 0 {
		t.Errorf("bodiless request: %+v", req)
	}
	req = NewRequest(t, "POST", "http://a.test/", "abc", "x-in", "v", "Host", "b.test", "X-In", "w")
	b, _ := io.ReadAll(req.Body)
	if string(b) != "abc" || req.ContentLength != 3 || req.Host != "b.test" || req.Header.Get("x-in") != "w" || req.Header.Get("host") != "" {
		t.Errorf("request with body and headers: body %q, %+v", b, req)
	}
}
