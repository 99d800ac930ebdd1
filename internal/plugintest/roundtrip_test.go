package plugintest

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-path", r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("short and stout"))
	}))
	defer srv.Close()
	req, err := http.NewRequest("GET", srv.URL+"/pot", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := RoundTrip(t, srv.Client(), req)
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("x-path") != "/pot" || body != "short and stout" {
		t.Errorf("got %d %q %q", resp.StatusCode, resp.Header, body)
	}
}
