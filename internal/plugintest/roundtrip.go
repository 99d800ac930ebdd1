package plugintest

import (
	"io"
	"net/http"
	"testing"
)

// RoundTrip sends req with cli and returns the response, its body already
// read whole and closed, and that body as a string. A transport or read
// error fails tb, naming the method and path.
func RoundTrip(tb testing.TB, cli *http.Client, req *http.Request) (*http.Response, string) {
	tb.Helper()
	resp, err := cli.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	return resp, string(b)
}
