//go:build !wasip1

package main

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// hostLoads renders an answer of sluice.upstream_loads.
func hostLoads(name string, eps ...endpoint) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	for _, e := range eps {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.addr)))
		b = append(b, e.addr...)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.load))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(0.5))
	}
	return b
}

// TestDecodePoolLoads: the binary loads read as the JSON does from the
// same proxy, and a malformed answer is refused.
func TestDecodePoolLoads(t *testing.T) {
	var urls []string
	for range 3 {
		up := proxytest.NewServer(proxytest.Options{})
		t.Cleanup(up.Close)
		urls = append(urls, up.URL)
	}
	srv, err := proxy.NewServer(proxy.NewConfig().WithUpstream("llm", urls...).WithUpstream("other", urls[0]), proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ex := srv.NewExchange()
	for _, pool := range []string{"llm", "other", "nope", ""} {
		name, got, ok := decodePoolLoads(nil, ex.AppendPoolLoads(nil, []byte(pool)), "")
		jname, jgot, err := scanPoolLoads(nil, ex.AppendUpstreamsJSON(nil), pool)
		if !ok || err != nil || name != jname || !slices.Equal(got, jgot) {
			t.Fatalf("pool %q: binary %q %v %v, JSON %q %v %v", pool, name, got, ok, jname, jgot, err)
		}
	}
	// Loads add in flight and queue depth; a bad number counts as 0;
	// the previous name is reused; unusable addresses are skipped.
	b := hostLoads("p", endpoint{addr: "a:1", load: 2}, endpoint{addr: "b:1", load: math.NaN()}, endpoint{addr: "c d:1", load: 1})
	prev := string([]byte("p"))
	name, got, ok := decodePoolLoads(nil, b, prev)
	if !ok || name != "p" || len(got) != 2 || got[0].load != 2.5 || got[1].load != 0.5 {
		t.Fatalf("decoded %q %+v %v", name, got, ok)
	}
	for _, bad := range [][]byte{nil, {1, 0, 0}, {2, 0, 0, 0, 'p'}, b[:len(b)-1], append(hostLoads("p"), 1, 0, 0, 0, 'a')} {
		if _, got, ok := decodePoolLoads(make([]endpoint, 1), bad, ""); ok || len(got) != 1 {
			t.Errorf("malformed %x: accepted (%d endpoints)", bad, len(got))
		}
	}
	dst := make([]endpoint, 0, 4)
	_, dst, _ = decodePoolLoads(dst, b, "p")
	if n := testing.AllocsPerRun(100, func() { _, dst, _ = decodePoolLoads(dst[:0], b, "p") }); n != 0 {
		t.Errorf("a repeated snapshot allocates %v times", n)
	}
}

// FuzzDecodePoolLoads: any answer decodes without a panic, and what is
// accepted has only usable endpoints with finite, non-negative loads.
func FuzzDecodePoolLoads(f *testing.F) {
	f.Add(hostLoads("llm", endpoint{addr: "10.0.0.1:8000", load: 3}), "llm")
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, "")
	f.Fuzz(func(t *testing.T, b []byte, prev string) {
		_, got, ok := decodePoolLoads(nil, b, prev)
		if !ok {
			return
		}
		for _, e := range got {
			if e.addr == "" || e.load < 0 || math.IsInf(e.load, 0) || math.IsNaN(e.load) {
				t.Fatalf("endpoint %+v from %x", e, b)
			}
		}
	})
}

// TestAppendEndpointReuses: a snapshot read again into the same slice
// reuses the address strings in place, and skips unusable addresses
// whether or not a previous string is there.
func TestAppendEndpointReuses(t *testing.T) {
	b := hostLoads("p", endpoint{addr: "a:1"}, endpoint{addr: "bad,x:1"}, endpoint{addr: "b:1"})
	_, first, _ := decodePoolLoads(make([]endpoint, 0, 4), b, "p")
	if len(first) != 2 || first[0].addr != "a:1" || first[1].addr != "b:1" {
		t.Fatalf("first read: %+v", first)
	}
	if n := testing.AllocsPerRun(100, func() { _, first, _ = decodePoolLoads(first[:0], b, "p") }); n != 0 {
		t.Errorf("reading the same snapshot again allocates %v times", n)
	}
	for _, addr := range []string{"", "x y:1", "x,y:1"} {
		if got := appendEndpoint(first[:0], []byte(addr), 1); len(got) != 0 {
			t.Errorf("%q accepted", addr)
		}
	}
}
