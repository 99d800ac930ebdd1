package coalesce

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestCompleteChunk(t *testing.T) {
	f := func(in string, size int, ok bool) {
		t.Helper()
		if s, k := completeChunk([]byte(in)); s != size || k != ok {
			t.Fatalf("completeChunk(%q) = %d, %v; want %d, %v", in, s, k, size, ok)
		}
	}
	f("5\r\nhello\r\n", 5, true)
	f("5\r\nhello\r\n3\r\nabc", 5, true) // the next one may be partial
	f("A;ext=1\r\n0123456789\r\n", 10, true)
	f("a \r\n0123456789\r\n", 10, true)
	f("5\r\nhello\r", 0, false) // the data's CRLF not all here
	f("5\r\nhell", 0, false)
	f("5\r", 0, false) // size line without its LF: the reader would wait
	f("5", 0, false)
	f("", 0, false)
	f("0\r\n\r\n", 0, false) // the last chunk is left to the reader
	f("x\r\n", 0, false)
	f("fffffff\r\n", 0, false)         // 256 MiB: its data is not here
	f("10000000\r\nabc\r\n", 0, false) // more digits than accepted
}

// FuzzCompleteChunk: never panics, and a chunk it accepts is all in b:
// the size line's CR and LF, then size bytes and two more.
func FuzzCompleteChunk(f *testing.F) {
	for _, s := range []string{"5\r\nhello\r\n", "a;x=y\r\n0123456789\r\n", "0\r\n\r\n", "ffffff\r\n", "1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		size, ok := completeChunk(b)
		if !ok {
			return
		}
		v, err := strconv.ParseUint(string(b[:bytes.IndexFunc(b, func(r rune) bool { return hexDigit(byte(r)) < 0 || r > 0x7f })]), 16, 32)
		if err != nil || int(v) != size || size <= 0 {
			t.Fatalf("%q: size %d, hex prefix %d (%v)", b, size, v, err)
		}
		cr := bytes.IndexByte(b, '\r')
		if cr < 0 || cr+2+size+2 > len(b) {
			t.Fatalf("%q accepted with size %d but not all of it is there", b, size)
		}
	})
}

// chunkReader decodes a chunked body from br, at most one chunk per Read,
// as fasthttp's body stream does.
type chunkReader struct {
	br   *bufio.Reader
	left int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseUint(size, 16, 32)
		if err != nil || n == 0 {
			return 0, io.EOF
		}
		c.left = int(n)
	}
	m, err := c.br.Read(p[:min(len(p), c.left)])
	c.left -= m
	if c.left == 0 && err == nil {
		_, err = c.br.Discard(2)
	}
	return m, err
}

// TestReadBuffered: after one chunk is read, the whole chunks already
// buffered are added while they fit; a partial chunk, one that does not
// fit, and the last chunk are left for the next Read.
func TestReadBuffered(t *testing.T) {
	f := func(stream string, room int, want string) {
		t.Helper()
		br := bufio.NewReader(strings.NewReader(stream))
		body := &chunkReader{br: br}
		p := make([]byte, room)
		n, err := body.Read(p)
		if err != nil {
			t.Fatalf("%q: first read: %v", stream, err)
		}
		n, err = ReadBuffered(br, body, p, n)
		if err != nil || string(p[:n]) != want {
			t.Fatalf("%q in %d bytes: %q, %v; want %q", stream, room, p[:n], err, want)
		}
	}
	f("5\r\nhello\r\n3\r\nabc\r\n2\r\nxy", 64, "helloabc")   // the partial chunk waits
	f("5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n", 64, "helloabc") // the last chunk is the reader's
	f("5\r\nhello\r\n3\r\nabc\r\n", 7, "hello")              // abc does not fit
	f("5\r\nhello\r\n3\r\nabc\r\n", 8, "helloabc")           // exactly fits
	if n, err := ReadBuffered(nil, nil, make([]byte, 8), 3); n != 3 || err != nil {
		t.Fatalf("nil reader: %d, %v", n, err)
	}
}
