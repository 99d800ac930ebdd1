package hopheaders

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// hopCases are header blocks carrying hop-by-hop headers in every
// position and spelling fasthttp treats specially (Connection,
// Transfer-Encoding, Trailer), and none at all.
var hopCases = []string{
	"",
	"Connection: keep-alive\r\n",
	"Connection: close\r\n",
	"connection: Upgrade\r\nupgrade: websocket\r\n",
	"Proxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n",
	"Proxy-Authorization: Basic eDp5\r\nProxy-Authenticate: Basic\r\n",
	"TE: trailers\r\nTrailer: X-Checksum\r\n",
	"Transfer-Encoding: chunked\r\n",
	"X-Keep: 1\r\nKEEP-ALIVE: 1\r\nX-Other: te\r\nte: gzip\r\n",
	"Cookie: a=b\r\nTrailer: X-A, X-B\r\nUpgrade: h2c\r\n",
}

// TestStripHopHeadersMatchesDeletingAll: stripping only the hop-by-hop
// headers found leaves requests and responses exactly as deleting all nine
// names did.
func TestStripHopHeadersMatchesDeletingAll(t *testing.T) {
	same := func(what string, old, neu hopHeaderMap, strip func()) {
		t.Helper()
		for _, k := range names {
			old.DelBytes(k)
		}
		strip()
		if o, n := old.String(), neu.String(); o != n {
			t.Errorf("%s:\nall nine deleted:\n%s\nstripped:\n%s", what, o, n)
		}
	}
	for _, hc := range hopCases {
		body := "0\r\n\r\n"
		if !strings.Contains(strings.ToLower(hc), "chunked") {
			body = ""
			hc += "Content-Length: 0\r\n"
		}
		oq, nq := readTwo[fasthttp.Request](t, "POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nUser-Agent: t\r\nX-Pass: 1\r\n"+hc+"\r\n"+body)
		same("request with "+hc, &oq.Header, &nq.Header, func() { StripRequest(&nq.Header) })
		or, nr := readTwo[fasthttp.Response](t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: u\r\nSet-Cookie: s=1\r\nX-Pass: 1\r\n"+hc+"\r\n"+body)
		same("response with "+hc, &or.Header, &nr.Header, func() { StripResponse(&nr.Header) })
	}
}

// hopHeaderMap is what the comparison needs of fasthttp's header types.
type hopHeaderMap interface {
	DelBytes(key []byte)
	String() string
}

// readTwo parses raw into two fresh messages (requests or responses).
func readTwo[M any, P interface {
	*M
	Read(*bufio.Reader) error
}](t *testing.T, raw string) (P, P) {
	t.Helper()
	a, b := P(new(M)), P(new(M))
	for _, m := range []P{a, b} {
		if err := m.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
	}
	return a, b
}

func TestHopBit(t *testing.T) {
	for i, k := range names {
		if l := len(k); l != 2 && l != 7 && l != 10 && l != 16 && l != 17 && l != 18 && l != 19 {
			t.Fatalf("%s: length %d missing from hopBit's length filter", k, l)
		}
		if hopBit(k) != 1<<i || hopBit([]byte(strings.ToUpper(string(k)))) != 1<<i {
			t.Fatalf("%s: bit %b", k, hopBit(k))
		}
	}
	for _, k := range []string{"", "X-Te", "Connectio", "Connections", "Content-Type", "Tf"} {
		if hopBit([]byte(k)) != 0 {
			t.Fatalf("%q counted as hop-by-hop", k)
		}
	}
}

func BenchmarkStripHopHeaders(b *testing.B) {
	var r fasthttp.Request
	raw := "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nAuthorization: Bearer x\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n"
	if err := r.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		StripRequest(&r.Header)
	}
}

// TestStripConnectionListedHeaders: the fields a Connection header names
// are hop-by-hop too (RFC 9110 §7.6.1) and are removed from requests and
// answers; fields it does not name stay.
func TestStripConnectionListedHeaders(t *testing.T) {
	const hc = "Connection: keep-alive, X-Hop-A,x-hop-b , ,close\r\nX-Hop-A: 1\r\nX-Hop-B: 2\r\nX-Keep: 3\r\nContent-Length: 0\r\n"
	check := func(what string, h interface {
		Peek(string) []byte
		String() string
	}) {
		t.Helper()
		for _, k := range []string{"Connection", "X-Hop-A", "X-Hop-B"} {
			if v := h.Peek(k); v != nil {
				t.Errorf("%s: %s: %q survived:\n%s", what, k, v, h.String())
			}
		}
		if string(h.Peek("X-Keep")) != "3" {
			t.Errorf("%s: X-Keep was removed:\n%s", what, h.String())
		}
	}
	req, _ := readTwo[fasthttp.Request](t, "GET / HTTP/1.1\r\nHost: a\r\n"+hc+"\r\n")
	StripRequest(&req.Header)
	check("request", &req.Header)
	resp, _ := readTwo[fasthttp.Response](t, "HTTP/1.1 200 OK\r\n"+hc+"\r\n")
	StripResponse(&resp.Header)
	check("response", &resp.Header)
}

// FuzzStripConnectionListed: any Connection value (parsed by
// delConnectionListed) leaves no Connection header and no field it names
// as a token, and never panics.
func FuzzStripConnectionListed(f *testing.F) {
	for _, s := range []string{"keep-alive, X-A", ",,", " x-a ,\tx-b", "close", strings.Repeat("x-a,", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		var h fasthttp.RequestHeader
		h.Set("Connection", value)
		h.Set("X-A", "1")
		h.Set("X-Keep", "2")
		StripRequest(&h)
		if h.Peek("Connection") != nil {
			t.Fatalf("Connection %q survived", value)
		}
		for _, tok := range strings.Split(value, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "x-a") && h.Peek("X-A") != nil {
				t.Fatalf("X-A survived Connection %q", value)
			}
		}
	})
}

// TestAllocsStripConnectionUsualTokens: the Connection values clients
// send on nearly every request ("keep-alive", "close", "Upgrade") are
// stripped without an allocation; only a value naming another field is
// copied.
func TestAllocsStripConnectionUsualTokens(t *testing.T) {
	for _, v := range []string{"keep-alive", "close", "Keep-Alive, Upgrade", " , close"} {
		var h fasthttp.RequestHeader // reused, as the server reuses its requests
		fill := func() {
			h.Reset()
			h.SetHost("a")
			h.Set("Connection", v)
			h.Set("Upgrade", "h2c")
			h.Set("X-Keep", "1")
		}
		if allocs := testing.AllocsPerRun(100, func() {
			fill()
			StripRequest(&h)
		}); allocs != 0 {
			t.Errorf("Connection: %q: %v allocations per strip, want 0", v, allocs)
		}
		if h.Peek("Connection") != nil || h.Peek("Upgrade") != nil || h.Peek("X-Keep") == nil {
			t.Errorf("Connection: %q: stripped to\n%s", v, h.String())
		}
	}
}
