package proxy

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestStreamCoalescesReceivedEvents: events the upstream sent together
// leave Sluice together, in one chunk and one write, not one write each.
func TestStreamCoalescesReceivedEvents(t *testing.T) {
	var all, want strings.Builder
	all.WriteString(sseHead)
	for i := 0; i < 5; i++ {
		all.WriteString(sseChunk(strconv.Itoa(i)))
		want.WriteString("data: " + strconv.Itoa(i) + "\n\n")
	}
	all.WriteString("0\r\n\r\n")
	up := scriptedUpstream(t, func(c net.Conn) { _, _ = c.Write([]byte(all.String())) })
	p := startProxy(t, baseConfig(up), Options{})
	got, chunks := readRest(t, streamThrough(t, p))
	if got != want.String() {
		t.Fatalf("body %q, want %q", got, want.String())
	}
	// One write from the upstream is one read here almost always; allow
	// the kernel one split.
	if chunks > 2 {
		t.Fatalf("5 events received together were sent in %d chunks, want them together", chunks)
	}
	checkSlotsFree(t, p.Router())
}

// TestStreamCoalescingNeverWaits: an event is sent on at once even when
// the start of the next one came with it; coalescing only takes what is
// already whole.
func TestStreamCoalescingNeverWaits(t *testing.T) {
	gotFirst := make(chan struct{})
	second := sseChunk("2")
	up := scriptedUpstream(t, func(c net.Conn) {
		// Event 1 and the first bytes of event 2 in one write; the rest of
		// event 2 only once the client has event 1.
		_, _ = c.Write([]byte(sseHead + sseChunk("1") + second[:5]))
		select {
		case <-gotFirst:
		case <-time.After(10 * time.Second):
		}
		_, _ = c.Write([]byte(second[5:] + "0\r\n\r\n"))
	})
	p := startProxy(t, baseConfig(up), Options{})
	br := streamThrough(t, p)
	type chunk struct {
		data string
		err  error
	}
	done := make(chan chunk, 1)
	go func() {
		ch, err := readChunk(br)
		done <- chunk{ch, err}
	}()
	select {
	case ch := <-done:
		if ch.err != nil || ch.data != "data: 1\n\n" {
			t.Fatalf("first chunk %q, %v", ch.data, ch.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event 1 held back until event 2 was complete")
	}
	close(gotFirst)
	// The part of event 2 already received may come on its own, as before.
	if rest, _ := readRest(t, br); rest != "data: 2\n\n" {
		t.Fatalf("after event 1: %q, want event 2", rest)
	}
}
