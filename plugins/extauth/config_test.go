package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
)

func TestParseConfig(t *testing.T) {
	s := configtest.MustParse(t, parseConfig, `{"pool": "auth"}`)
	want := settings{pool: "auth", path: "/", method: "GET", authority: "auth", timeout: time.Second,
		forward: []string{"authorization"}, copy: []string{}}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("defaults %+v, want %+v", *s, want)
	}
	s = configtest.MustParse(t, parseConfig, `{"pool": "auth", "path": "/v1/check?x=1", "method": "post", "authority": "auth.internal:8443",
		"timeout": "250ms", "forward_headers": ["Authorization", "x-api-key"], "copy_headers": ["X-User-Id"],
		"cache_ttl": "30s", "failure_mode_allow": true}`)
	want = settings{pool: "auth", path: "/v1/check?x=1", method: "POST", authority: "auth.internal:8443", timeout: 250 * time.Millisecond,
		forward: []string{"authorization", "x-api-key"}, copy: []string{"x-user-id"}, ttl: 30 * time.Second, failureModeAllow: true}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("explicit %+v, want %+v", *s, want)
	}
	if s := configtest.MustParse(t, parseConfig, `{"pool": "auth", "forward_headers": []}`); len(s.forward) != 0 {
		t.Errorf("an explicit empty forward list became %q", s.forward)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "extauth: the configuration is empty"},
		{`{"pool": `, "extauth: invalid JSON configuration"},
		{`{"pool": "a", "ttl": "1s"}`, `unknown field "ttl"`},
		{`{"pool": "a"} {}`, "unexpected data after the top-level object"},
		{`{}`, `extauth: pool: "" is not an upstream pool name`},
		{`{"pool": "a", "path": "check"}`, `extauth: path: "check" must start with /`},
		{`{"pool": "a", "path": "/a b"}`, `extauth: path: "/a b"`},
		{`{"pool": "a", "method": "GE T"}`, `extauth: method: "GE T" is not an HTTP method`},
		{`{"pool": "a", "authority": "a/b"}`, `extauth: authority: "a/b" is not a host`},
		{`{"pool": "a", "timeout": "5"}`, `extauth: timeout: "5" is not a duration such as "500ms"`},
		{`{"pool": "a", "timeout": "0s"}`, "extauth: timeout: 0s is not in 1ms..1m0s"},
		{`{"pool": "a", "timeout": "2m"}`, "extauth: timeout: 2m0s is not in 1ms..1m0s"},
		{`{"pool": "a", "cache_ttl": "-1s"}`, "extauth: cache_ttl: -1s is not in 0s..24h0m0s"},
		{`{"pool": "a", "forward_headers": ["ok", "bad name"]}`, `extauth: forward_headers[1]: "bad name" is not a header name`},
		{`{"pool": "a", "copy_headers": ["X-A", "x-a"]}`, `extauth: copy_headers[1]: "x-a" is listed twice`},
	} {
		_, err := parseConfig([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestForwardedAndKey(t *testing.T) {
	req := [][2]string{{":method", "POST"}, {"authorization", "Bearer a"}, {"x-api-key", "k1"}, {"X-Api-Key", "k2"}}
	fwd := forwarded([]string{"x-api-key", "authorization", "cookie"}, req)
	want := [][2]string{{"x-api-key", "k1"}, {"x-api-key", "k2"}, {"authorization", "Bearer a"}}
	if !reflect.DeepEqual(fwd, want) {
		t.Errorf("forwarded = %q, want %q", fwd, want)
	}
	k1 := cacheKey("p", fwd)
	if k1 != cacheKey("p", want) || !strings.HasPrefix(k1, "extauth/p/") {
		t.Errorf("key %q not stable", k1)
	}
	for _, other := range [][][2]string{
		{{"x-api-key", "k1k2"}, {"authorization", "Bearer a"}},
		{{"x-api-key", "k1"}, {"x-api-key", "k2"}, {"authorization", "Bearer b"}},
		nil,
	} {
		if cacheKey("p", other) == k1 {
			t.Errorf("headers %q share the key of %q", other, fwd)
		}
	}
	if cacheKey("q", fwd) == k1 {
		t.Error("the prefix does not separate plugins")
	}
}

func TestCalloutHeaders(t *testing.T) {
	s := configtest.MustParse(t, parseConfig, `{"pool": "auth", "path": "/check", "authority": "auth.local"}`)
	got := calloutHeaders(s, [][2]string{{"authorization", "Bearer a"}}, "POST", "/v1/chat/completions?x=1", "req-1")
	want := [][2]string{{":method", "GET"}, {":path", "/check"}, {":authority", "auth.local"}, {"authorization", "Bearer a"},
		{"x-forwarded-method", "POST"}, {"x-forwarded-uri", "/v1/chat/completions?x=1"}, {"x-request-id", "req-1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("callout headers %q, want %q", got, want)
	}
}

func TestDecide(t *testing.T) {
	s := configtest.MustParse(t, parseConfig, `{"pool": "auth", "copy_headers": ["x-user-id", "x-groups"]}`)
	v, ok := decide(s, 200, [][2]string{{":status", "200"}, {"x-user-id", "u1"}, {"x-groups", "a"}, {"x-groups", "b"}, {"x-other", "z"}}, nil)
	if !ok || !v.allow || !reflect.DeepEqual(v.headers, [][2]string{{"x-user-id", "u1"}, {"x-groups", "a"}, {"x-groups", "b"}}) {
		t.Errorf("200: %+v %v", v, ok)
	}
	v, ok = decide(s, 403, [][2]string{{":status", "403"}, {"content-type", "text/plain"}, {"x-user-id", "u1"}}, []byte("nope"))
	if !ok || v.allow || v.status != 403 || string(v.body) != "nope" || !reflect.DeepEqual(v.headers, [][2]string{{"content-type", "text/plain"}}) {
		t.Errorf("403: %+v %v", v, ok)
	}
	v, ok = decide(s, 401, [][2]string{{"www-authenticate", "Bearer"}, {"content-type", "text/plain"}}, nil)
	if !ok || v.status != 401 || !json.Valid(v.body) || !bytes.Contains(v.body, []byte(`"code":"unauthorized"`)) ||
		!reflect.DeepEqual(v.headers, [][2]string{{"www-authenticate", "Bearer"}, {"content-type", "application/json"}}) {
		t.Errorf("empty 401: %+v %v", v, ok)
	}
	v, ok = decide(s, 302, [][2]string{{"location", "https://login"}}, []byte("x"))
	if !ok || v.status != 302 || v.headers[0][1] != "https://login" {
		t.Errorf("302: %+v %v", v, ok)
	}
	for _, st := range []int{0, 100, 500, 503} {
		if _, ok := decide(s, st, nil, nil); ok {
			t.Errorf("status %d was not a failure", st)
		}
	}
	if _, ok := decide(s, 403, nil, make([]byte, maxAuthBody+1)); ok {
		t.Error("an over-long refusal body was accepted")
	}
	if f := failure(s); f.allow || !f.failed || f.status != 503 || !bytes.Contains(f.body, []byte("auth_unavailable")) {
		t.Errorf("failure: %+v", f)
	}
	s.failureModeAllow = true
	if f := failure(s); !f.allow || !f.failed {
		t.Errorf("failure_mode_allow: %+v", f)
	}
	if statusOf([][2]string{{":status", "204"}}) != 204 || statusOf([][2]string{{":status", "x"}}) != 0 || statusOf(nil) != 0 {
		t.Error("statusOf")
	}
}

func TestRecord(t *testing.T) {
	for _, v := range []verdict{
		{allow: true},
		{allow: true, headers: [][2]string{{"x-user-id", "u"}}},
		{status: 403, headers: [][2]string{{"content-type", "text/plain"}}, body: []byte("no")},
	} {
		got, exp, ok := decodeRecord(encodeRecord(v, 42))
		if !ok || exp != 42 || !reflect.DeepEqual(got, v) {
			t.Errorf("round trip %+v → %+v %d %v", v, got, exp, ok)
		}
	}
	good := encodeRecord(verdict{status: 403}, 1)
	for _, bad := range [][]byte{nil, good[:17], append([]byte{9}, good[1:]...), encodeRecord(verdict{status: 200}, 1)} {
		if _, _, ok := decodeRecord(bad); ok {
			t.Errorf("decodeRecord(%x) accepted it", bad)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{"pool":"a"}`, `{"pool":"a","cache_ttl":"1s","copy_headers":["x"]}`, `{}`, ``} {
		f.Add([]byte(s))
	}
	configtest.Fuzz(f, "extauth: ", parseConfig, func(t *testing.T, data []byte, s *settings) {
		if s.pool == "" || s.path[0] != '/' || s.timeout < time.Millisecond || s.timeout > maxTimeout || s.ttl < 0 || s.ttl > maxCacheTTL {
			t.Fatalf("accepted %q as %+v", data, s)
		}
	})
}

// FuzzDecodeRecord checks that any shared-data value decodes without
// panicking and that what decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(verdict{allow: true, headers: [][2]string{{"a", "b"}}}, 5))
	f.Add(encodeRecord(verdict{status: 401, body: []byte("x")}, 5))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, exp, ok := decodeRecord(data)
		if !ok {
			return
		}
		if again := encodeRecord(v, exp); !bytes.Equal(again, data) {
			// Map encodings may differ only if the input was not canonical;
			// the decoded verdict must still round-trip.
			v2, exp2, ok2 := decodeRecord(again)
			if !ok2 || exp2 != exp || !reflect.DeepEqual(v2, v) {
				t.Fatalf("%x decoded to %+v, which does not round-trip", data, v)
			}
		}
	})
}
