// Package testhttp holds the plain net/http test helpers that package
// proxy's tests and package proxytest's own tests share (proxytest's
// tests cannot import testkit, which imports proxytest). Only tests
// import it.
package testhttp

import (
	"io"
	"net/http"
	"testing"
)

// Do sends req with c and returns the response with its whole body read
// (the body is closed), failing the test if either step fails.
func Do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, b
}

// Get fetches url with http.DefaultClient and returns the response with
// its whole body read, failing the test on an error.
func Get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Do(t, http.DefaultClient, req)
}

// ModelList is OpenAI's GET /v1/models answer as a client decodes it,
// written from the API reference and not from the servers that encode it,
// so that a test decoding into it checks their field names.
type ModelList struct {
	Object string `json:"object"` // "list"
	Data   []struct {
		ID      string `json:"id"`
		Object  string `json:"object"` // "model"
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	} `json:"data"`
}
