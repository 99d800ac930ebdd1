package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"
)

// TestRequestBodyNotCopiedForFilters: the request-body phase hands the
// filters the body as read, not a copy (issue 11: it was copied
// rs.body → Exchange → rs.body), and what a filter sets is what is sent.
func TestRequestBodyNotCopiedForFilters(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) }))
	t.Cleanup(up.Close)
	shared := make(chan bool, 1)
	f := &funcFilter{name: "body", onReqBdy: func(ex *Exchange) (Action, error) {
		rs := (*requestState)(unsafe.Add(unsafe.Pointer(ex), -int(unsafe.Offsetof(requestState{}.ex))))
		shared <- unsafe.SliceData(rs.body) == unsafe.SliceData(ex.RequestBody())
		ex.SetRequestBody([]byte(strings.Replace(string(ex.RequestBody()), `"m"`, `"echo-me"`, 1)))
		return ActionContinue, nil
	}}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions",
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if !<-shared {
		t.Fatal("the filters were handed a copy of the request body")
	}
	if !strings.Contains(body, "echo-me") {
		t.Fatalf("the body a filter set was not sent: %s", body)
	}
}
